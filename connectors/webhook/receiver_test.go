package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jmlgate/jmlgate/connectors"
)

// This file is a receiver written the way the package documentation tells
// a custom application to write one: it trusts nothing but the JWKS that
// jmlgate serves over HTTP.

// newTestKeySet returns a KeySet in a fresh file and an HTTP server
// publishing it with JWKSHandler.
func newTestKeySet(t *testing.T) (*KeySet, *httptest.Server) {
	t.Helper()
	ks, err := LoadOrCreateKeySet(filepath.Join(t.TempDir(), "webhook-keys.json"))
	if err != nil {
		t.Fatalf("LoadOrCreateKeySet: %v", err)
	}
	srv := httptest.NewServer(JWKSHandler(ks))
	t.Cleanup(srv.Close)
	return ks, srv
}

// fetchJWKS gets a public key set over HTTP, refusing private keys.
func fetchJWKS(url string) (*jose.JSONWebKeySet, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET JWKS: HTTP %d", resp.StatusCode)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return nil, err
	}
	set := &jose.JSONWebKeySet{}
	for _, r := range raw.Keys {
		var probe map[string]any
		if err := json.Unmarshal(r, &probe); err != nil {
			return nil, err
		}
		if _, ok := probe["d"]; ok {
			return nil, errors.New("JWKS publishes a private key")
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// verifyEvent checks a delivery body against set as a receiver must: one
// EdDSA signature, typ TokenType, a kid the set holds, iss, a known type,
// and exactly the documented claims.
func verifyEvent(body string, set *jose.JSONWebKeySet) (Event, string, error) {
	jws, err := jose.ParseSigned(body, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return Event{}, "", fmt.Errorf("parse JWS: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return Event{}, "", errors.New("want one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != TokenType {
		return Event{}, "", fmt.Errorf("typ %q, want %q", typ, TokenType)
	}
	if h.KeyID == "" {
		return Event{}, "", errors.New("no kid")
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		return Event{}, h.KeyID, errUnknownKID
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return Event{}, h.KeyID, fmt.Errorf("verify: %w", err)
	}
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return Event{}, h.KeyID, fmt.Errorf("claims: %w", err)
	}
	if ev.Issuer != Issuer || ev.JTI == "" || ev.IssuedAt == 0 || ev.Ref == "" {
		return Event{}, h.KeyID, fmt.Errorf("claims incomplete: %+v", ev)
	}
	const skew = time.Minute
	if now := time.Now(); ev.ExpiresAt != ev.IssuedAt+int64(Lifetime/time.Second) ||
		now.After(time.Unix(ev.ExpiresAt, 0).Add(skew)) || now.Before(time.Unix(ev.IssuedAt, 0).Add(-skew)) {
		return Event{}, h.KeyID, fmt.Errorf("%w: iat %d exp %d", errExpired, ev.IssuedAt, ev.ExpiresAt)
	}
	switch ev.Type {
	case TypeEnsure:
		if ev.Account == nil || ev.Account.IdentityID != ev.Ref || ev.Entitlement != "" {
			return Event{}, h.KeyID, fmt.Errorf("bad ensure claims: %+v", ev)
		}
	case TypeGrant, TypeRevoke:
		if ev.Account != nil || ev.Entitlement == "" {
			return Event{}, h.KeyID, fmt.Errorf("bad %s claims: %+v", ev.Type, ev)
		}
	case TypeDisable:
		if ev.Account != nil || ev.Entitlement != "" {
			return Event{}, h.KeyID, fmt.Errorf("bad disable claims: %+v", ev)
		}
	default:
		return Event{}, h.KeyID, fmt.Errorf("unknown type %q", ev.Type)
	}
	return ev, h.KeyID, nil
}

var (
	errUnknownKID = errors.New("unknown kid")
	errExpired    = errors.New("expired or not yet valid")
)

type account struct {
	userName     string
	identityID   string
	enabled      bool
	entitlements map[string]bool
}

type failure struct {
	status int
	header http.Header
	// afterApply applies the event, then answers status: an
	// acknowledgement lost on the way back.
	afterApply bool
	// echo makes the body quote the request's headers and URL, as a
	// careless application's error page does.
	echo bool
}

// delivery is one verified event as received.
type delivery struct {
	ev  Event
	kid string
	dup bool // already applied: dropped
}

// receiver is a custom application receiving jmlgate webhook events.
type receiver struct {
	srv       *httptest.Server
	jwksURL   string
	connector string // expected "connector" claim
	apiKey    string // expected X-Api-Key, "" for none

	mu         sync.Mutex
	jwks       *jose.JSONWebKeySet
	accounts   map[string]*account
	applied    map[string]bool // jti
	deliveries []delivery
	rejected   []error
	fail       []failure
	hang       chan struct{}
}

func newReceiver(t *testing.T, jwksURL, connector, apiKey string, tlsServer bool) *receiver {
	t.Helper()
	rc := &receiver{
		jwksURL:   jwksURL,
		connector: connector,
		apiKey:    apiKey,
		accounts:  map[string]*account{},
		applied:   map[string]bool{},
	}
	if tlsServer {
		rc.srv = httptest.NewTLSServer(rc)
	} else {
		rc.srv = httptest.NewServer(rc)
	}
	t.Cleanup(rc.srv.Close)
	return rc
}

// Fail answers the next request with status and header, unserved.
func (rc *receiver) Fail(status int, header http.Header) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.fail = append(rc.fail, failure{status: status, header: header})
}

// FailEcho answers the next request with status and a body quoting the
// request's headers and URL query.
func (rc *receiver) FailEcho(status int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.fail = append(rc.fail, failure{status: status, echo: true})
}

// LoseAck applies the next event but answers it with status.
func (rc *receiver) LoseAck(status int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.fail = append(rc.fail, failure{status: status, afterApply: true})
}

// Hang holds every request until release is called.
func (rc *receiver) Hang() (release func()) {
	ch := make(chan struct{})
	rc.mu.Lock()
	rc.hang = ch
	rc.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			rc.mu.Lock()
			rc.hang = nil
			rc.mu.Unlock()
			close(ch)
		})
	}
}

func (rc *receiver) Inspect(t *testing.T, ref string) (connectors.AccountState, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	a, ok := rc.accounts[ref]
	if !ok {
		return connectors.AccountState{}, false
	}
	st := connectors.AccountState{Ref: ref, UserName: a.userName, IdentityID: a.identityID, Enabled: a.enabled}
	for e := range a.entitlements {
		st.Entitlements = append(st.Entitlements, e)
	}
	slices.Sort(st.Entitlements)
	return st, true
}

func (rc *receiver) Deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.deliveries)
}

func (rc *receiver) Rejected() []error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.rejected)
}

func (rc *receiver) reject(w http.ResponseWriter, status int, err error) {
	rc.mu.Lock()
	rc.rejected = append(rc.rejected, err)
	rc.mu.Unlock()
	http.Error(w, err.Error(), status)
}

// verify verifies body, fetching the JWKS again when its kid is unknown.
func (rc *receiver) verify(body string) (Event, string, error) {
	rc.mu.Lock()
	set := rc.jwks
	rc.mu.Unlock()
	if set != nil {
		ev, kid, err := verifyEvent(body, set)
		if !errors.Is(err, errUnknownKID) {
			return ev, kid, err
		}
	}
	set, err := fetchJWKS(rc.jwksURL)
	if err != nil {
		return Event{}, "", err
	}
	rc.mu.Lock()
	rc.jwks = set
	rc.mu.Unlock()
	return verifyEvent(body, set)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	hang := rc.hang
	var f *failure
	if len(rc.fail) > 0 {
		f = &rc.fail[0]
		rc.fail = rc.fail[1:]
	}
	rc.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	if f != nil && !f.afterApply {
		for k, v := range f.header {
			w.Header()[k] = v
		}
		msg := "injected failure"
		if f.echo {
			msg = fmt.Sprintf("refused %s?%s with headers %v", r.URL.Path, r.URL.RawQuery, r.Header)
		}
		http.Error(w, msg, f.status)
		return
	}
	if r.Method != http.MethodPost {
		rc.reject(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s", r.Method))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != MediaType {
		rc.reject(w, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q", ct))
		return
	}
	if rc.apiKey != "" && r.Header.Get("X-Api-Key") != rc.apiKey {
		rc.reject(w, http.StatusUnauthorized, errors.New("bad API key"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		rc.reject(w, http.StatusBadRequest, err)
		return
	}
	ev, kid, err := rc.verify(string(body))
	if err != nil {
		rc.reject(w, http.StatusUnauthorized, err)
		return
	}
	if ev.Connector != rc.connector {
		rc.reject(w, http.StatusForbidden, fmt.Errorf("event for connector %q", ev.Connector))
		return
	}

	rc.mu.Lock()
	status := rc.apply(ev, kid)
	rc.mu.Unlock()
	if f != nil {
		status = f.status
	}
	w.WriteHeader(status)
}

// apply changes the state for ev unless its jti was applied before;
// rc.mu is held.
func (rc *receiver) apply(ev Event, kid string) int {
	d := delivery{ev: ev, kid: kid}
	defer func() { rc.deliveries = append(rc.deliveries, d) }()
	if rc.applied[ev.JTI] {
		d.dup = true
		return http.StatusOK
	}
	a := rc.accounts[ev.Ref]
	switch ev.Type {
	case TypeEnsure:
		if a == nil {
			a = &account{entitlements: map[string]bool{}}
			rc.accounts[ev.Ref] = a
		}
		a.userName, a.identityID, a.enabled = ev.Account.UserName, ev.Account.IdentityID, true
	case TypeDisable:
		if a == nil {
			return http.StatusNoContent // already gone: acknowledged, as the protocol says
		}
		a.enabled = false
	case TypeGrant:
		if a == nil {
			return http.StatusNotFound
		}
		a.entitlements[ev.Entitlement] = true
	case TypeRevoke:
		if a == nil {
			return http.StatusNoContent // already gone: acknowledged
		}
		delete(a.entitlements, ev.Entitlement)
	}
	rc.applied[ev.JTI] = true
	return http.StatusNoContent
}
