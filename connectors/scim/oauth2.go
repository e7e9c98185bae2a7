package scim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// authenticator supplies the bearer token of each request.
type authenticator interface {
	// token returns the token to send.
	token(ctx context.Context) (string, error)
	// invalidate drops tok after the target refused it with 401 and
	// reports whether sending the request again may help (a new token
	// can be fetched).
	invalidate(ctx context.Context, tok string) bool
	// secrets returns every credential the authenticator holds or has
	// recently sent, in the forms a target could echo, for
	// connectors.Redact.
	secrets() []string
}

// staticToken is a configured bearer token. It is held by pointer and
// formats as "[redacted]": fmt does not call the methods of a value it
// reaches through an unexported field, so a Secret field alone would not
// keep the token out of a printed Conn; a pointer below the top level is
// printed as an address.
type staticToken struct{ tok Secret }

func (s *staticToken) token(context.Context) (string, error) { return string(s.tok), nil }
func (*staticToken) invalidate(context.Context, string) bool { return false }
func (s *staticToken) secrets() []string                     { return tokenForms(string(s.tok)) }

// String, GoString, Format and LogValue show "[redacted]".
func (*staticToken) String() string               { return "[redacted]" }
func (s *staticToken) GoString() string           { return s.String() }
func (s *staticToken) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }
func (s *staticToken) LogValue() slog.Value       { return slog.StringValue(s.String()) }

// tokenForms returns a bearer token as sent and as a JSON encoder that
// escapes "/" would echo it.
func tokenForms(tok string) []string {
	if tok == "" {
		return nil
	}
	return []string{tok, strings.ReplaceAll(tok, "/", `\/`)}
}

// validToken reports whether tok has the syntax of RFC 6750 section 2.1:
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
// Anything else (white space, a quote, a comma, a control character) could
// not be sent in an Authorization header as one credential.
func validToken(tok string) bool {
	body := strings.TrimRight(tok, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

const (
	// expiryMargin is how long before its expiry a token is replaced.
	expiryMargin = 30 * time.Second
	// defaultTokenLife is assumed when the token endpoint gives no
	// expires_in (RFC 6749 section 5.1 makes it optional).
	defaultTokenLife = 5 * time.Minute
	// maxTokenBody bounds the token endpoint's answer.
	maxTokenBody = 64 << 10
)

// tokenSource runs the client-credentials grant (RFC 6749 section 4.4)
// and caches the access token until expiryMargin before it expires. One
// fetch runs at a time; callers waiting for it give up with their ctx.
type tokenSource struct {
	c    *Conn
	conf OAuth2
	// sem is a one-slot lock held while reading or fetching the token, so
	// that concurrent requests share one fetch and a waiter can still be
	// cancelled.
	sem     chan struct{}
	current Secret
	expires time.Time

	// mu guards recent, the last tokens fetched (current included), which
	// secrets reports without waiting for sem.
	mu     sync.Mutex
	recent []Secret
}

// keepRecent is how many fetched tokens secrets reports: the current one
// and the one it replaced, which a request still in flight may have sent.
const keepRecent = 2

// String, GoString, Format and LogValue name the token endpoint and the
// client id only.
func (s *tokenSource) String() string {
	return "oauth2 client credentials " + s.conf.ClientID + " at " + s.conf.TokenURL
}
func (s *tokenSource) GoString() string           { return s.String() }
func (s *tokenSource) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }
func (s *tokenSource) LogValue() slog.Value       { return slog.StringValue(s.String()) }

func newTokenSource(c *Conn, conf OAuth2) *tokenSource {
	return &tokenSource{c: c, conf: conf, sem: make(chan struct{}, 1)}
}

// secrets returns the client secret (as configured, form-encoded as it is
// sent, and inside the Basic credentials) and the recent access tokens.
func (s *tokenSource) secrets() []string {
	secret := string(s.conf.ClientSecret)
	basic := url.QueryEscape(s.conf.ClientID) + ":" + url.QueryEscape(secret)
	out := []string{secret, url.QueryEscape(secret), base64.StdEncoding.EncodeToString([]byte(basic))}
	s.mu.Lock()
	for _, t := range s.recent {
		out = append(out, tokenForms(string(t))...)
	}
	s.mu.Unlock()
	return out
}

func (s *tokenSource) remember(tok Secret) {
	s.mu.Lock()
	s.recent = append(s.recent, tok)
	if len(s.recent) > keepRecent {
		s.recent = s.recent[len(s.recent)-keepRecent:]
	}
	s.mu.Unlock()
}

func (s *tokenSource) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("oauth2 token: %w", ctx.Err())
	}
}

func (s *tokenSource) unlock() { <-s.sem }

func (s *tokenSource) token(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("oauth2 token: %w", err)
	}
	if err := s.lock(ctx); err != nil {
		return "", err
	}
	defer s.unlock()
	if s.current != "" && s.c.now().Before(s.expires) {
		return string(s.current), nil
	}
	tok, life, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	s.current = Secret(tok)
	s.remember(s.current)
	// A token that lives less than twice the margin is kept for half its
	// life instead.
	keep := life - expiryMargin
	if life < 2*expiryMargin {
		keep = life / 2
	}
	s.expires = s.c.now().Add(keep)
	return tok, nil
}

func (s *tokenSource) invalidate(ctx context.Context, tok string) bool {
	if s.lock(ctx) != nil {
		return false
	}
	defer s.unlock()
	if string(s.current) == tok {
		s.current = ""
	}
	return true
}

// tokenResponse is RFC 6749 section 5.1.
type tokenResponse struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
}

// fetch asks the token endpoint for a new token. Any 2xx is an answer to
// read (some endpoints send 201); its body, which holds the token, is
// never quoted in an error. A non-2xx answer is classified by
// connectors.HTTPError with its body (first 512 bytes) quoted after the
// client secret, in every form it is sent, was taken out. The request
// body is never quoted.
func (s *tokenSource) fetch(ctx context.Context) (string, time.Duration, error) {
	const op = "oauth2 token: POST token_url"
	ctx, cancel := context.WithTimeout(ctx, s.c.timeout)
	defer cancel()
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(s.conf.Scopes) > 0 {
		form.Set("scope", strings.Join(s.conf.Scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.conf.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, connectors.Errorf(connectors.Permanent, "%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 section 2.3.1: the id and secret are form-encoded before
	// Basic encoding.
	req.SetBasicAuth(url.QueryEscape(s.conf.ClientID), url.QueryEscape(string(s.conf.ClientSecret)))
	resp, err := s.c.client.Do(req)
	if err != nil {
		return "", 0, connectors.Transport(op, err)
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// RFC 6749 section 5.2: errors are 400 (401 for a bad client);
		// HTTPError makes them Permanent and 429/5xx Retryable.
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorRead))
		resp.Body = io.NopCloser(strings.NewReader(connectors.Redact(string(raw), s.secrets()...)))
		return "", 0, connectors.HTTPError(op, resp, s.c.now())
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	if err != nil {
		return "", 0, connectors.Transport(op+": reading response", err)
	}
	if len(raw) > maxTokenBody {
		return "", 0, connectors.Errorf(connectors.Permanent, "%s: response larger than %d bytes", op, maxTokenBody)
	}
	var tr tokenResponse
	if err := json.Unmarshal(raw, &tr); err != nil {
		return "", 0, connectors.Errorf(connectors.Permanent, "%s: response is not a token response: %v", op, err)
	}
	if tr.AccessToken == "" {
		return "", 0, connectors.Errorf(connectors.Permanent, "%s: response has no access_token", op)
	}
	if !validToken(tr.AccessToken) {
		return "", 0, connectors.Errorf(connectors.Permanent,
			"%s: access_token is not an RFC 6750 bearer token (letters, digits, -._~+/ and trailing =)", op)
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer") {
		return "", 0, connectors.Errorf(connectors.Permanent, "%s: token_type %q, want Bearer", op,
			connectors.Redact(tr.TokenType, tr.AccessToken))
	}
	life, err := expiresIn(tr.ExpiresIn)
	if err != nil {
		return "", 0, connectors.Errorf(connectors.Permanent, "%s: %v", op, err)
	}
	return tr.AccessToken, life, nil
}

// expiresIn reads expires_in, a number of seconds (some servers send it
// as a string). NaN, infinities, negative and absurdly large values are
// refused: time.Duration of NaN is undefined.
func expiresIn(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return defaultTokenLife, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, errors.New("expires_in is not a number")
		}
		// The string must hold a JSON number and nothing else:
		// json.Number.Float64 alone would accept "NaN", "Inf" and
		// hexadecimal.
		if strings.TrimSpace(s) != s {
			return 0, errors.New("expires_in is not a number")
		}
		raw = json.RawMessage(s)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, errors.New("expires_in is not a number")
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e9 {
		return 0, fmt.Errorf("expires_in %.32q is not a number of seconds", n)
	}
	return time.Duration(f * float64(time.Second)), nil
}
