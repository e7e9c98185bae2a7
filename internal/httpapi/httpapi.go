// Package httpapi is jmlgate's HTTP layer and the only package that imports
// echo: authentication and scopes, per-token rate limits, request ids,
// structured access logs, Prometheus metrics, timeouts, health endpoints,
// and one error format per surface (SCIM errors under /scim/v2, JSON
// {"error","message"} elsewhere). Protocol handlers are plain net/http
// handlers mounted here, so moving to echo v5 touches only this package.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/jmlgate/jmlgate/internal/auth"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/scim"
)

// Config wires the HTTP layer. All fields but the limits are required.
type Config struct {
	Auth   *auth.Authenticator
	SCIM   http.Handler
	Ready  func(ctx context.Context) error // store reachable and migrated
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served on /metrics.
	Registry *prometheus.Registry
	// RateLimit is requests per second per caller (0 disables) with Burst.
	RateLimit      float64
	RateBurst      int
	RequestTimeout time.Duration
	BodyLimit      int64
	// Mounts are the /api/v1 handlers (plain net/http), each behind auth and
	// the scopes that may call it.
	Mounts []Mount
}

// Mount serves Prefix and everything below it with Handler for callers
// holding any of Scopes. A Public mount takes no bearer token (its requests
// carry their own proof, e.g. signed Security Event Tokens) and is rate
// limited per client address.
type Mount struct {
	Prefix  string // e.g. "/api/v1/identities"
	Handler http.Handler
	Scopes  []auth.Scope
	Public  bool
}

// New returns the gateway's http.Handler.
func New(cfg Config) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	m := newMetrics(cfg.Registry)
	e.HTTPErrorHandler = errorHandler(cfg.Logger)

	e.Use(sanitizeRequestID)
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		RequestIDHandler: func(c echo.Context, id string) {
			c.SetRequest(c.Request().WithContext(reqctx.WithRequestID(c.Request().Context(), id)))
		},
	}))
	e.Use(accessLog(cfg.Logger, m))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		cfg.Logger.ErrorContext(c.Request().Context(), "panic", "error", err, "stack", string(stack))
		return err
	}}))
	if cfg.RequestTimeout > 0 {
		e.Use(middleware.ContextTimeout(cfg.RequestTimeout))
	}

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		if err := cfg.Ready(c.Request().Context()); err != nil {
			cfg.Logger.WarnContext(c.Request().Context(), "not ready", "error", err)
			return apiError(http.StatusServiceUnavailable, "not_ready", "store unreachable or migrations pending")
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry, ErrorHandling: promhttp.ContinueOnError})))

	authn := authenticate(cfg.Auth)
	limit := rateLimit(cfg.RateLimit, cfg.RateBurst)
	scimGroup := e.Group(scim.Prefix, scimBodyLimit(cfg.BodyLimit), authn, requireScope(auth.ScopeSCIM), limit)
	scimGroup.Any("", echo.WrapHandler(cfg.SCIM))
	scimGroup.Any("/*", echo.WrapHandler(cfg.SCIM))
	for _, m := range cfg.Mounts {
		mw := []echo.MiddlewareFunc{apiBodyLimit(cfg.BodyLimit), authn, requireScope(m.Scopes...), limit}
		if m.Public {
			mw = []echo.MiddlewareFunc{apiBodyLimit(cfg.BodyLimit), limit}
		}
		g := e.Group(m.Prefix, mw...)
		g.Any("", echo.WrapHandler(m.Handler))
		g.Any("/*", echo.WrapHandler(m.Handler))
	}
	return e
}

func bodyTooLarge(n, limit int64) *HTTPError {
	return apiError(http.StatusRequestEntityTooLarge, "body_too_large",
		"request body of "+strconv.FormatInt(n, 10)+" bytes exceeds the limit of "+strconv.FormatInt(limit, 10)+" bytes")
}

// apiBodyLimit caps JSON API bodies; larger ones get 413 before a handler
// reads them.
func apiBodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if limit > 0 && c.Request().ContentLength > limit {
				return bodyTooLarge(c.Request().ContentLength, limit)
			}
			if limit > 0 {
				c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, limit)
			}
			return next(c)
		}
	}
}

// sanitizeRequestID keeps an upstream X-Request-Id only when it is a
// plausible correlation id (1-128 of A-Z a-z 0-9 . _ - :); otherwise it is
// dropped and a fresh one generated. The id reaches logs and audit records,
// so clients must not be able to put arbitrary text there.
func sanitizeRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && !validRequestID(id) {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

func validRequestID(id string) bool {
	if len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':') {
			return false
		}
	}
	return true
}

// HTTPError is the JSON error body outside SCIM.
type HTTPError struct {
	Status     int    `json:"-"`
	Code       string `json:"error"`
	Message    string `json:"message"`
	RetryAfter int    `json:"-"`
}

func (e *HTTPError) Error() string { return e.Code + ": " + e.Message }

func apiError(status int, code, msg string) *HTTPError {
	return &HTTPError{Status: status, Code: code, Message: msg}
}

// codeFor names the error codes of the non-SCIM API; the one place where
// statuses map to codes.
func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request"
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "internal"
}

// errorHandler renders every error that reaches echo: SCIM-shaped under
// /scim/v2, {"error","message"} elsewhere. Unexpected errors are logged in
// full and shown as a generic message.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		he := toHTTPError(err)
		if he.Status >= 500 {
			log.ErrorContext(c.Request().Context(), "request failed", "error", err, "path", c.Request().URL.Path)
		}
		if he.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(he.RetryAfter))
		}
		if he.Status == http.StatusUnauthorized {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="jmlgate"`)
		}
		if strings.HasPrefix(c.Request().URL.Path, scim.Prefix) {
			scim.WriteError(c.Response(), &scim.Error{Status: he.Status, Detail: he.Message})
			return
		}
		_ = c.JSON(he.Status, he)
	}
}

func toHTTPError(err error) *HTTPError {
	var he *HTTPError
	if errors.As(err, &he) {
		return he
	}
	var ee *echo.HTTPError
	if errors.As(err, &ee) {
		msg := http.StatusText(ee.Code)
		if s, ok := ee.Message.(string); ok && ee.Code < 500 {
			msg = s
		}
		return apiError(ee.Code, codeFor(ee.Code), msg)
	}
	return apiError(http.StatusInternalServerError, "internal", "internal error; see the server log for the request id")
}

// scimBodyLimit rejects a declared Content-Length above limit before the
// body is read; the SCIM handler enforces the limit on the bytes it reads.
func scimBodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if limit > 0 && c.Request().ContentLength > limit && !strings.HasSuffix(c.Request().URL.Path, "/Bulk") {
				return bodyTooLarge(c.Request().ContentLength, limit)
			}
			return next(c)
		}
	}
}

const principalKey = "jmlgate.principal"

// authenticate resolves the bearer credential and records the caller in the
// request context. Failures never echo the credential.
func authenticate(a *auth.Authenticator) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get("Authorization")
			scheme, cred, ok := strings.Cut(h, " ")
			if h == "" {
				return apiError(http.StatusUnauthorized, "unauthenticated", "missing Authorization: Bearer credential")
			}
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
				return apiError(http.StatusUnauthorized, "unauthenticated", "Authorization must use the Bearer scheme")
			}
			p, err := a.Authenticate(c.Request().Context(), strings.TrimSpace(cred))
			if err != nil {
				if !isCredentialError(err) {
					// The store or the JWKS could not be reached: not the
					// caller's fault, and not a reason to say "invalid".
					return fmt.Errorf("authenticate: %w", err)
				}
				return apiError(http.StatusUnauthorized, "unauthenticated", authMessage(err))
			}
			c.Set(principalKey, p)
			c.SetRequest(c.Request().WithContext(reqctx.WithActor(c.Request().Context(), p.Name)))
			return next(c)
		}
	}
}

func isCredentialError(err error) bool {
	return errors.Is(err, auth.ErrMissing) || errors.Is(err, auth.ErrInvalid) ||
		errors.Is(err, auth.ErrExpired) || errors.Is(err, auth.ErrRevoked)
}

func authMessage(err error) string {
	switch {
	case errors.Is(err, auth.ErrExpired):
		return "credential expired"
	case errors.Is(err, auth.ErrRevoked):
		return "credential revoked"
	}
	return "invalid credential"
}

func principal(c echo.Context) *auth.Principal {
	p, _ := c.Get(principalKey).(*auth.Principal)
	return p
}

// requireScope refuses callers holding none of scopes.
func requireScope(scopes ...auth.Scope) echo.MiddlewareFunc {
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = string(sc)
	}
	need := "the " + strings.Join(names, " or ") + " scope"
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p := principal(c)
			for _, sc := range scopes {
				if p != nil && p.Has(sc) {
					return next(c)
				}
			}
			return apiError(http.StatusForbidden, "forbidden", "this credential lacks "+need)
		}
	}
}

// rateLimit applies a token bucket per authenticated caller.
func rateLimit(rps float64, burst int) echo.MiddlewareFunc {
	if rps <= 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	if burst < 1 {
		burst = 1
	}
	retry := int(math.Ceil(1 / rps))
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(rps), Burst: burst, ExpiresIn: 10 * time.Minute,
		}),
		IdentifierExtractor: func(c echo.Context) (string, error) {
			if p := principal(c); p != nil {
				return p.Name, nil
			}
			return c.RealIP(), nil
		},
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			he := apiError(http.StatusTooManyRequests, "rate_limited", "rate limit exceeded for this credential; retry later")
			he.RetryAfter = max(retry, 1)
			return he
		},
	})
}
