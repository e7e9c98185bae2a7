// Package events receives Security Event Tokens (SETs, RFC 8417) that
// identity providers push (RFC 8935) to prove or revoke a person's MFA
// enrollment, and applies them to the lifecycle engine.
//
// One SET is one POST /api/v1/events with Content-Type
// application/secevent+jwt and a compact JWS as the body. The receiver
// checks, in order: the signature algorithm (asymmetric only and in the
// issuer's allow-list), the issuer, the key (by kid, from the issuer's
// JWKS), the signature, the audience, iat (no older than the issuer's
// max_age, at most a minute ahead), exp when present, and jti (recorded per
// issuer so a replay is refused until the iat window closes).
//
// The only event acted on is CAEP credential-change
// (https://schemas.openid.net/secevent/caep/event-type/credential-change).
// Creating or updating an MFA credential proves enrollment
// (workflows.Engine.MFAProven with method "set:<credential_type>"); deleting
// or revoking one clears it (workflows.Engine.MFARevoked), so an active
// identity without a live exception goes back to awaiting MFA.
//
// Limitation: jmlgate keeps no count of a person's credentials at each
// identity provider. A delete or revoke of any MFA credential therefore
// means "this person has no MFA", even if the provider still holds another
// of their authenticators, and even if the enrollment was proven by
// jmlgate's built-in TOTP or by another issuer (whose enrollment it also
// clears). This fails closed: the person enrols again (or the provider
// sends a create for a remaining credential) to regain access.
//
// The subject is the event's "subject" (CAEP), else the SET's "sub_id"
// (RFC 9493): format email (a userName, else any of a user's emails,
// case-insensitively), iss_sub (the sub as externalId, else as userName),
// aliases of those, or a CAEP complex subject's "user". A subject that
// matches several users proves nobody (a guess could open the wrong
// person's gate) but a delete or revoke reaches them all (it fails
// closed). An email that is not a userName is found by scanning every
// user, outside the write transaction: about 7 ms per 1000 users.
//
// A SET is accepted with 202 once it verifies, even when it changes
// nothing: an event type or credential type that is not acted on, a
// subject that matches no identity (so providers do not retry it forever),
// or a create for an identity that already has MFA recorded (the first
// proof stands, as for TOTP). Invalid SETs get 400 with the RFC 8935 error
// body {"err": code, "description": ...}.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/workflows"
)

// Path is where Handler serves SET push delivery (POST only).
const Path = "/api/v1/events"

// ContentType is the media type of a pushed SET (RFC 8417 §2.3).
const ContentType = "application/secevent+jwt"

// MaxBodyBytes caps a pushed SET; a larger body is refused with 413.
const MaxBodyBytes = 64 << 10

// FutureSkew is how far ahead of the receiver's clock a SET's iat may be.
const FutureSkew = time.Minute

// Error codes of RFC 8935 §2.4 that the receiver answers with.
const (
	ErrInvalidRequest       = "invalid_request"
	ErrInvalidKey           = "invalid_key"
	ErrInvalidIssuer        = "invalid_issuer"
	ErrInvalidAudience      = "invalid_audience"
	ErrAuthenticationFailed = "authentication_failed"
)

// Receiver verifies pushed SETs and applies their credential-change
// events. Set the exported fields, then call Init (at start-up, to fail
// fast on a broken jwks_file) and Handler. It is safe for concurrent use;
// the fields must not change after Init.
type Receiver struct {
	Store  store.Store
	Engine *workflows.Engine // its Now is the receiver's clock
	// Issuers are the identity providers trusted to send SETs, as
	// config.Validate checks them (defaults applied).
	Issuers []config.EventIssuer
	Log     *slog.Logger // nil: slog.Default()
	// HTTPClient fetches jwks_url key sets; nil: a client with a 10s
	// timeout that refuses redirects to plain http (except to loopback).
	// Every fetch is also bounded by a 10s context deadline.
	HTTPClient *http.Client

	once    sync.Once
	initErr error
	issuers map[string]*issuer
}

// Init checks the issuers and reads every jwks_file (a jwks_url is first
// fetched by the first SET from that issuer). It runs once: later calls
// return the first result. The handler calls it on its first request and
// answers 500 to every request if it failed. Errors name the issuer and
// the file; they are configuration errors, not retried.
func (r *Receiver) Init() error {
	r.once.Do(func() { r.initErr = r.init() })
	return r.initErr
}

func (r *Receiver) init() error {
	if r.Store == nil || r.Engine == nil || r.Engine.Now == nil {
		return errors.New("events: Store, Engine and Engine.Now are required")
	}
	client := r.HTTPClient
	if client == nil {
		client = defaultClient()
	}
	r.issuers = make(map[string]*issuer, len(r.Issuers))
	for i, c := range r.Issuers {
		if _, dup := r.issuers[c.Issuer]; dup {
			return fmt.Errorf("events: issuer %q is configured twice", c.Issuer)
		}
		is, err := newIssuer(c, client)
		if err != nil {
			return fmt.Errorf("events: issuer %d (%q): %w", i, c.Issuer, err)
		}
		r.issuers[c.Issuer] = is
	}
	return nil
}

func (r *Receiver) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Handler serves POST Path. Responses: 202 with an empty body when the SET
// is accepted (applied or deliberately ignored); 400 with the RFC 8935
// error body when it is invalid, including a replayed jti; 413 (same body,
// invalid_request) when it exceeds MaxBodyBytes; 503 when the issuer's key
// set cannot be fetched at all (the provider should retry); 500 on a store
// failure (logged in full, nothing written). Other methods get 405.
//
// The handler authenticates nothing but the SET: its signature is the
// transmitter's credential. It sets the audit actor to "set:<iss>" and
// keeps the request id already in the request's context.
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, r.serve)
	return mux
}

// setError is a refusal with its RFC 8935 code.
type setError struct {
	status      int
	code        string
	description string
}

func (e *setError) Error() string { return e.code + ": " + e.description }

func refuse(code, format string, args ...any) *setError {
	return &setError{status: http.StatusBadRequest, code: code, description: fmt.Sprintf(format, args...)}
}

// errUnavailable: the issuer's key set could not be fetched, so the SET
// could be valid; the transmitter should try again later.
var errUnavailable = errors.New("issuer key set unavailable")

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if err := r.Init(); err != nil {
		r.log().Error("events: receiver not initialised", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	err := r.receive(req.Context(), w, req)
	var se *setError
	switch {
	case err == nil:
		w.WriteHeader(http.StatusAccepted)
	case errors.As(err, &se):
		r.log().InfoContext(req.Context(), "events: SET refused", "code", se.code, "description", se.description,
			"request_id", reqctx.RequestID(req.Context()))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(se.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"err": se.code, "description": se.description})
	case errors.Is(err, errUnavailable):
		r.log().WarnContext(req.Context(), "events: SET not verified", "err", err,
			"request_id", reqctx.RequestID(req.Context()))
		w.Header().Set("Retry-After", "60")
		http.Error(w, "key set unavailable, retry later", http.StatusServiceUnavailable)
	default:
		r.log().ErrorContext(req.Context(), "events: SET not applied", "err", err,
			"request_id", reqctx.RequestID(req.Context()))
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// receive reads, verifies and applies one SET.
func (r *Receiver) receive(ctx context.Context, w http.ResponseWriter, req *http.Request) error {
	ct := req.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.EqualFold(mt, ContentType) {
		return refuse(ErrInvalidRequest, "Content-Type must be %s, got %q", ContentType, clip(ct))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &setError{status: http.StatusRequestEntityTooLarge, code: ErrInvalidRequest,
			description: fmt.Sprintf("body larger than %d bytes", MaxBodyBytes)}
	}
	if err != nil {
		return refuse(ErrInvalidRequest, "reading the body: %v", err)
	}
	now := r.Engine.Now().UTC()
	set, err := r.verify(ctx, strings.TrimSpace(string(body)), now)
	if err != nil {
		return err
	}
	return r.apply(ctx, set, now)
}

// clip shortens an untrusted value quoted in an error description.
func clip(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
