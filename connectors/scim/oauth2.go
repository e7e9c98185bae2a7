package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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
}

// staticToken is a configured bearer token.
type staticToken Secret

func (s staticToken) token(context.Context) (string, error) { return string(s), nil }
func (staticToken) invalidate(context.Context, string) bool { return false }

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
	current string
	expires time.Time
}

func newTokenSource(c *Conn, conf OAuth2) *tokenSource {
	return &tokenSource{c: c, conf: conf, sem: make(chan struct{}, 1)}
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
		return s.current, nil
	}
	tok, life, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	s.current = tok
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
	if s.current == tok {
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

// fetch asks the token endpoint for a new token. Its errors never hold the
// client secret: the request body is not quoted, and only the endpoint's
// answer (first 512 bytes) and the transport error are.
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
	if resp.StatusCode != http.StatusOK {
		// RFC 6749 section 5.2: errors are 400 (401 for a bad client);
		// HTTPError makes them Permanent and 429/5xx Retryable.
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
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer") {
		return "", 0, connectors.Errorf(connectors.Permanent, "%s: token_type %q, want Bearer", op, tr.TokenType)
	}
	life, err := expiresIn(tr.ExpiresIn)
	if err != nil {
		return "", 0, connectors.Errorf(connectors.Permanent, "%s: %v", op, err)
	}
	return tr.AccessToken, life, nil
}

// expiresIn reads expires_in, a number of seconds (some servers send it
// as a string).
func expiresIn(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return defaultTokenLife, nil
	}
	var n json.Number
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, errors.New("expires_in is not a number")
		}
		n = json.Number(s)
	} else if err := json.Unmarshal(raw, &n); err != nil {
		return 0, errors.New("expires_in is not a number")
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e9 {
		return 0, fmt.Errorf("expires_in %s is not a number of seconds", raw)
	}
	return time.Duration(f * float64(time.Second)), nil
}
