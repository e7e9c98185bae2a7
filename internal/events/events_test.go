package events_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/events"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
	"github.com/jmlgate/jmlgate/scim"
	"github.com/jmlgate/jmlgate/workflows"
)

const (
	userURN  = "urn:ietf:params:scim:schemas:core:2.0:User"
	patchURN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

	// issFile's keys come from a jwks_file, issURL's from a jwks_url.
	issFile  = "https://idp-file.example.com"
	issURL   = "https://idp-url.example.com/oauth2/default"
	audience = "https://jml.example.com/api/v1/events"

	ccURI = events.CredentialChange
)

// testKey is a signing key and the kid it is published under.
type testKey struct {
	alg  jose.SignatureAlgorithm
	kid  string
	priv crypto.Signer
}

func (k testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

func edKey(kid string) testKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return testKey{alg: jose.EdDSA, kid: kid, priv: priv}
}

var (
	fileKey    = edKey("ed-1")
	impostor   = edKey("ed-1") // same kid as fileKey, other key
	rotatedKey = edKey("ed-2")
	// RSA generation is slow: once per test binary.
	urlKey = sync.OnceValue(func() testKey {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return testKey{alg: jose.RS256, kid: "rsa-1", priv: priv}
	})
)

func jwks(keys ...testKey) []byte {
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk())
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

// jwksServer serves a key set that a test can replace, and counts fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	fetches atomic.Int64
}

func newJWKSServer(t testing.TB, keys ...testKey) *jwksServer {
	s := &jwksServer{body: jwks(keys...), status: http.StatusOK}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(s.status)
		w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, keys ...testKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, jwks(keys...)
}

// clock is a settable time source near the wall clock: the store compares
// jti expiries with the wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t      testing.TB
	st     store.Store
	engine *workflows.Engine
	clock  *clock
	recv   *events.Receiver
	h      http.Handler
	jwks   *jwksServer
	ids    map[string]string // userName → id
	logs   *bytes.Buffer
}

// newEnv starts a store with these users (all created active through the
// SCIM server, so awaiting MFA):
//
//	ada@example.com
//	bob            externalId 00u-bob, email Bob.Smith@Example.COM
//	dan@example.com  then made a leaver (terminated)
//	eve1, eve2     both with email shared@example.com
//	frank          externalId 00u-frank
//
// and a receiver trusting issFile (fileKey, from a file; EdDSA or RS256)
// and issURL (urlKey, from an https server; default algorithms).
func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	tmpl, err := template()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "events.db")
	if err := os.WriteFile(path, tmpl.db, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: tmpl.now}
	engine := &workflows.Engine{Now: c.now}
	e := &env{t: t, st: st, engine: engine, clock: c, ids: tmpl.ids, logs: &bytes.Buffer{}}

	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwks(fileKey), 0o600); err != nil {
		t.Fatal(err)
	}
	e.jwks = newJWKSServer(t, urlKey())
	d := config.DefaultEventIssuer()
	e.recv = &events.Receiver{
		Store:  st,
		Engine: engine,
		Issuers: []config.EventIssuer{
			{Issuer: issFile, Audience: audience, JWKSFile: file, Algorithms: []string{"EdDSA", "RS256"},
				MaxAge: d.MaxAge, JWKSRefresh: d.JWKSRefresh},
			{Issuer: issURL, Audience: audience, JWKSURL: e.jwks.URL + "/keys", Algorithms: d.Algorithms,
				MaxAge: d.MaxAge, JWKSRefresh: d.JWKSRefresh},
		},
		Log:        slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HTTPClient: e.jwks.Client(),
	}
	if err := e.recv.Init(); err != nil {
		t.Fatal(err)
	}
	e.h = e.recv.Handler()
	return e
}

// seeded is a migrated database holding the users newEnv describes; every
// test starts from a copy of it (building it takes most of a test's time).
type seeded struct {
	db  []byte
	ids map[string]string
	now time.Time
}

var template = sync.OnceValues(func() (*seeded, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "events-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "seed.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	// Near the wall clock: the store compares jti expiries with it.
	now := time.Now().UTC().Truncate(time.Second)
	engine := &workflows.Engine{Now: func() time.Time { return now }}
	srv := scim.NewServer(scim.Config{Store: st, Now: engine.Now, Lifecycle: engine})
	do := func(method, path string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req := httptest.NewRequest(method, scim.Prefix+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/scim+json")
		req = req.WithContext(reqctx.WithActor(req.Context(), "workday"))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
	ids := map[string]string{}
	for _, u := range []map[string]any{
		{"userName": "ada@example.com"},
		{"userName": "bob", "externalId": "00u-bob", "emails": []any{map[string]any{"value": "Bob.Smith@Example.COM", "type": "work"}}},
		{"userName": "dan@example.com"},
		{"userName": "eve1", "emails": []any{map[string]any{"value": "shared@example.com"}}},
		{"userName": "eve2", "emails": []any{map[string]any{"value": "shared@example.com"}}},
		{"userName": "frank", "externalId": "00u-frank"},
	} {
		u["schemas"], u["active"] = []string{userURN}, true
		code, body := do("POST", "/Users", u)
		if code != http.StatusCreated {
			return nil, fmt.Errorf("create %v: %d %v", u["userName"], code, body)
		}
		ids[u["userName"].(string)] = body["id"].(string)
	}
	patch := map[string]any{"schemas": []string{patchURN},
		"Operations": []any{map[string]any{"op": "replace", "path": "active", "value": false}}}
	if code, body := do("PATCH", "/Users/"+ids["dan@example.com"], patch); code != http.StatusOK {
		return nil, fmt.Errorf("leaver: %d %v", code, body)
	}
	if err := st.Close(); err != nil { // checkpoints the WAL into the file
		return nil, err
	}
	db, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		return nil, errors.New("seed database still has a WAL after Close")
	}
	return &seeded{db: db, ids: ids, now: now}, nil
})

// push posts body as a SET and returns the status and the decoded error
// body (nil when the body is empty).
func (e *env) push(contentType, body string) (int, map[string]string) {
	e.t.Helper()
	req := httptest.NewRequest("POST", events.Path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req = req.WithContext(reqctx.WithRequestID(req.Context(), "req-1"))
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Body.Len() == 0 {
		return rec.Code, nil
	}
	var m map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		e.t.Fatalf("response body %q: %v", rec.Body.String(), err)
	}
	return rec.Code, m
}

func (e *env) identity(userName string) *store.Identity {
	e.t.Helper()
	var got *store.Identity
	err := e.st.View(context.Background(), func(tx store.ReadTx) error {
		var err error
		got, err = tx.GetIdentity(context.Background(), e.ids[userName])
		return err
	})
	if err != nil {
		e.t.Fatalf("identity %s: %v", userName, err)
	}
	return got
}

// actions lists the audit records about userName's identity.
func (e *env) actions(userName string) []string {
	e.t.Helper()
	var out []string
	err := e.st.View(context.Background(), func(tx store.ReadTx) error {
		recs, err := tx.AuditFor(context.Background(), store.TypeIdentity, e.ids[userName], 1, -1)
		for _, r := range recs {
			out = append(out, r.Action+" by "+r.Actor)
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// auditCount is the length of the whole audit chain.
func (e *env) auditCount() int64 {
	e.t.Helper()
	var n int64
	err := e.st.View(context.Background(), func(tx store.ReadTx) error {
		head, err := tx.AuditHead(context.Background())
		if err == nil {
			n = head.Seq
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

var jtiSeq atomic.Int64

// claims returns a valid credential-change SET's claims from iss about
// subject (carried in sub_id).
func (e *env) claims(iss, credType, change string, subject map[string]any) map[string]any {
	return map[string]any{
		"iss":    iss,
		"aud":    audience,
		"iat":    e.clock.now().Unix(),
		"jti":    fmt.Sprintf("jti-%d", jtiSeq.Add(1)),
		"sub_id": subject,
		"events": map[string]any{ccURI: map[string]any{"credential_type": credType, "change_type": change}},
	}
}

func email(addr string) map[string]any { return map[string]any{"format": "email", "email": addr} }
func issSub(iss, sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": iss, "sub": sub}
}

// typOmit leaves the typ header out.
const typOmit = "-"

// sign signs claims with k as a compact JWS; typ "" is "secevent+jwt".
func sign(t testing.TB, k testKey, typ any, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	switch typ {
	case "":
		opts.WithType("secevent+jwt")
	case typOmit:
	default:
		opts.WithHeader(jose.HeaderType, typ)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// craft builds a compact JWS by hand: for "none" and HMAC, which the
// receiver must refuse whatever the key.
func craft(header, claims map[string]any, hmacKey []byte) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sig := ""
	if hmacKey != nil {
		m := hmac.New(sha256.New, hmacKey)
		m.Write([]byte(input))
		sig = base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	return input + "." + sig
}

// with returns a copy of c with key set to v (nil deletes it).
func with(c map[string]any, key string, v any) map[string]any {
	out := make(map[string]any, len(c))
	for k, x := range c {
		out[k] = x
	}
	if v == nil {
		delete(out, key)
	} else {
		out[key] = v
	}
	return out
}

// prove records MFA for userName as an earlier SET would have.
func (e *env) prove(userName string) {
	e.t.Helper()
	ctx := reqctx.WithActor(context.Background(), "set:"+issFile)
	err := e.st.Update(ctx, func(tx store.Tx) error {
		return e.engine.MFAProven(ctx, tx, e.ids[userName], "set:app", e.clock.now())
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

const (
	joined    = "lifecycle.joiner by workday"
	proven    = "lifecycle.mfa by set:" + issFile
	activated = "lifecycle.activate by set:" + issFile
)

func TestReceive(t *testing.T) {
	t.Parallel()
	type request struct {
		contentType string // "" is events.ContentType; "none" sends no header
		body        func(e *env) string
	}
	tests := []struct {
		name   string
		before func(e *env)
		req    func(e *env) string // the SET, posted as application/secevent+jwt
		raw    *request            // instead of req, for content-type and body cases
		status int
		code   string // err of the 400 body
		desc   string // part of its description
		// The identity of user afterwards, and its audit actions.
		user, state, method string
		actions             []string
	}{
		{
			name: "create by email proves MFA and activates",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "fido2-platform", "create", email("ADA@example.com")))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateActive, method: "set:fido2-platform",
			actions: []string{joined, proven, activated},
		},
		{
			name: "RSA key from a jwks_url, iss_sub on externalId in the event's subject",
			req: func(e *env) string {
				c := with(e.claims(issURL, "app", "update", nil), "sub_id", nil)
				c["events"] = map[string]any{ccURI: map[string]any{"credential_type": "app", "change_type": "update",
					"subject": issSub(issURL, "00u-bob")}}
				return sign(e.t, urlKey(), "", c)
			},
			status: http.StatusAccepted, user: "bob", state: store.StateActive, method: "set:app",
			actions: []string{joined, "lifecycle.mfa by set:" + issURL, "lifecycle.activate by set:" + issURL},
		},
		{
			name: "email matched in the user's emails, case-insensitively",
			req: func(e *env) string {
				return sign(e.t, fileKey, typOmit, e.claims(issFile, "phone-sms", "create", email("bob.smith@example.com")))
			},
			status: http.StatusAccepted, user: "bob", state: store.StateActive, method: "set:phone-sms",
			actions: []string{joined, proven, activated},
		},
		{
			name: "iss_sub falls back to userName; CAEP complex subject",
			req: func(e *env) string {
				return sign(e.t, fileKey, "application/secevent+jwt", e.claims(issFile, "x509", "create",
					map[string]any{"user": issSub(issFile, "frank"), "tenant": map[string]any{"format": "opaque", "id": "t1"}}))
			},
			status: http.StatusAccepted, user: "frank", state: store.StateActive, method: "set:x509",
			actions: []string{joined, proven, activated},
		},
		{
			name: "aliases subject",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "fido-u2f", "create", map[string]any{"format": "aliases",
					"identifiers": []any{map[string]any{"format": "opaque", "id": "x"}, email("ada@example.com")}}))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateActive, method: "set:fido-u2f",
			actions: []string{joined, proven, activated},
		},
		{
			name: "password is not a second factor",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "password", "create", email("ada@example.com")))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateAwaitingMFA, actions: []string{joined},
		},
		{
			name: "pin is not a second factor",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "pin", "create", email("ada@example.com")))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateAwaitingMFA, actions: []string{joined},
		},
		{
			name:   "delete of an MFA credential: back to awaiting MFA",
			before: func(e *env) { e.prove("ada@example.com") },
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "fido2-roaming", "delete", email("ada@example.com")))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateAwaitingMFA,
			actions: []string{joined, proven, activated, "lifecycle.mfa_revoked by set:" + issFile,
				"lifecycle.deactivate by set:" + issFile},
		},
		{
			name:   "revoke of an MFA credential",
			before: func(e *env) { e.prove("ada@example.com") },
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "phone-voice", "revoke", email("ada@example.com")))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateAwaitingMFA,
			actions: []string{joined, proven, activated, "lifecycle.mfa_revoked by set:" + issFile,
				"lifecycle.deactivate by set:" + issFile},
		},
		{
			name:   "delete of a password changes nothing",
			before: func(e *env) { e.prove("ada@example.com") },
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "password", "delete", email("ada@example.com")))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateActive, method: "set:app",
			actions: []string{joined, proven, activated},
		},
		{
			name:   "create for an identity with MFA keeps the first proof",
			before: func(e *env) { e.prove("ada@example.com") },
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "fido2-platform", "create", email("ada@example.com")))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateActive, method: "set:app",
			actions: []string{joined, proven, activated},
		},
		{
			name: "create for a leaver is not recorded",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create", email("dan@example.com")))
			},
			status: http.StatusAccepted, user: "dan@example.com", state: store.StateTerminated,
			actions: []string{joined, "lifecycle.leaver by workday", "lifecycle.revoked by workday"},
		},
		{
			name: "create for an ambiguous email proves nobody",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create", email("shared@example.com")))
			},
			status: http.StatusAccepted, user: "eve1", state: store.StateAwaitingMFA, actions: []string{joined},
		},
		{
			name: "unknown subject is accepted and changes nothing",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create", email("nobody@example.com")))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateAwaitingMFA, actions: []string{joined},
		},
		{
			name: "unsupported subject format is accepted and changes nothing",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create",
					map[string]any{"format": "phone_number", "phone_number": "+12065550100"}))
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateAwaitingMFA, actions: []string{joined},
		},
		{
			name: "other event types are accepted and ignored",
			req: func(e *env) string {
				c := e.claims(issFile, "", "", email("ada@example.com"))
				c["events"] = map[string]any{"https://schemas.openid.net/secevent/caep/event-type/session-revoked": map[string]any{}}
				return sign(e.t, fileKey, "", c)
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateAwaitingMFA, actions: []string{joined},
		},

		// Refusals: nothing changes.
		{
			name: "unknown issuer",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims("https://evil.example.com", "app", "create", email("ada@example.com")))
			},
			status: 400, code: events.ErrInvalidIssuer, desc: `"https://evil.example.com" is not configured`,
		},
		{
			name: "issuer compared exactly",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile+"/", "app", "create", email("ada@example.com")))
			},
			status: 400, code: events.ErrInvalidIssuer,
		},
		{
			name: "wrong audience",
			req: func(e *env) string {
				c := with(e.claims(issFile, "app", "create", email("ada@example.com")), "aud", []string{"someone-else"})
				return sign(e.t, fileKey, "", c)
			},
			status: 400, code: events.ErrInvalidAudience, desc: audience,
		},
		{
			name: "audience in an array",
			req: func(e *env) string {
				c := with(e.claims(issFile, "app", "create", email("ada@example.com")), "aud", []string{"x", audience})
				return sign(e.t, fileKey, "", c)
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateActive, method: "set:app",
			actions: []string{joined, proven, activated},
		},
		{
			name: "missing audience",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", with(e.claims(issFile, "app", "create", email("ada@example.com")), "aud", nil))
			},
			status: 400, code: events.ErrInvalidAudience,
		},
		{
			name: "algorithm not allowed for this issuer",
			req: func(e *env) string {
				k := urlKey() // RS256 is allowed overall, and the kid is unknown to issFile anyway
				k2 := testKey{alg: jose.PS256, kid: fileKey.kid, priv: k.priv}
				return sign(e.t, k2, "", e.claims(issFile, "app", "create", email("ada@example.com")))
			},
			status: 400, code: events.ErrInvalidKey, desc: "PS256 is not accepted from this issuer",
		},
		{
			name: "alg none",
			req: func(e *env) string {
				return craft(map[string]any{"alg": "none", "typ": "secevent+jwt"},
					e.claims(issFile, "app", "create", email("ada@example.com")), nil)
			},
			status: 400, code: events.ErrInvalidKey, desc: `"none" is not accepted`,
		},
		{
			name: "HMAC with the public key as secret",
			req: func(e *env) string {
				return craft(map[string]any{"alg": "HS256", "kid": fileKey.kid, "typ": "secevent+jwt"},
					e.claims(issFile, "app", "create", email("ada@example.com")),
					fileKey.priv.Public().(ed25519.PublicKey))
			},
			status: 400, code: events.ErrInvalidKey, desc: `"HS256" is not accepted`,
		},
		{
			name: "typ of a plain JWT",
			req: func(e *env) string {
				return sign(e.t, fileKey, "JWT", e.claims(issFile, "app", "create", email("ada@example.com")))
			},
			status: 400, code: events.ErrInvalidRequest, desc: `typ header must be "secevent+jwt", got "JWT"`,
		},
		{
			name: "typ not a string",
			req: func(e *env) string {
				return sign(e.t, fileKey, 7, e.claims(issFile, "app", "create", email("ada@example.com")))
			},
			status: 400, code: events.ErrInvalidRequest, desc: "typ header must be a string",
		},
		{
			name: "signed by another key under a known kid",
			req: func(e *env) string {
				return sign(e.t, impostor, "", e.claims(issFile, "app", "create", email("ada@example.com")))
			},
			status: 400, code: events.ErrAuthenticationFailed, desc: "signature does not verify",
		},
		{
			name: "payload altered after signing",
			req: func(e *env) string {
				s := sign(e.t, fileKey, "", e.claims(issFile, "app", "create", email("dan@example.com")))
				p, _ := json.Marshal(e.claims(issFile, "app", "create", email("ada@example.com")))
				parts := strings.Split(s, ".")
				return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
			},
			status: 400, code: events.ErrAuthenticationFailed,
		},
		{
			name: "kid unknown to a jwks_file",
			req: func(e *env) string {
				return sign(e.t, rotatedKey, "", e.claims(issFile, "app", "create", email("ada@example.com")))
			},
			status: 400, code: events.ErrInvalidKey, desc: `no key with id "ed-2" for EdDSA`,
		},
		{
			name: "iat older than max_age",
			req: func(e *env) string {
				c := with(e.claims(issFile, "app", "create", email("ada@example.com")), "iat",
					e.clock.now().Add(-10*time.Minute-time.Second).Unix())
				return sign(e.t, fileKey, "", c)
			},
			status: 400, code: events.ErrInvalidRequest, desc: "is older than 10m0s",
		},
		{
			name: "iat exactly max_age old",
			req: func(e *env) string {
				c := with(e.claims(issFile, "app", "create", email("ada@example.com")), "iat",
					e.clock.now().Add(-10*time.Minute).Unix())
				return sign(e.t, fileKey, "", c)
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateActive, method: "set:app",
			actions: []string{joined, proven, activated},
		},
		{
			name: "iat in the future",
			req: func(e *env) string {
				c := with(e.claims(issFile, "app", "create", email("ada@example.com")), "iat",
					e.clock.now().Add(time.Minute+time.Second).Unix())
				return sign(e.t, fileKey, "", c)
			},
			status: 400, code: events.ErrInvalidRequest, desc: "is in the future",
		},
		{
			name: "missing iat",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", with(e.claims(issFile, "app", "create", email("ada@example.com")), "iat", nil))
			},
			status: 400, code: events.ErrInvalidRequest, desc: "iat claim is required",
		},
		{
			name: "iat not a number",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", with(e.claims(issFile, "app", "create", email("ada@example.com")), "iat", "now"))
			},
			status: 400, code: events.ErrInvalidRequest, desc: "iat must be a NumericDate",
		},
		{
			name: "expired exp",
			req: func(e *env) string {
				c := with(e.claims(issFile, "app", "create", email("ada@example.com")), "exp",
					e.clock.now().Add(-2*time.Minute).Unix())
				return sign(e.t, fileKey, "", c)
			},
			status: 400, code: events.ErrInvalidRequest, desc: "expired at",
		},
		{
			name: "missing jti",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", with(e.claims(issFile, "app", "create", email("ada@example.com")), "jti", nil))
			},
			status: 400, code: events.ErrInvalidRequest, desc: "jti claim is required",
		},
		{
			name: "empty jti",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", with(e.claims(issFile, "app", "create", email("ada@example.com")), "jti", ""))
			},
			status: 400, code: events.ErrInvalidRequest, desc: "jti claim is required",
		},
		{
			name: "replayed jti",
			before: func(e *env) {
				c := e.claims(issFile, "app", "create", email("ada@example.com"))
				c["jti"] = "once"
				if code, body := e.push(events.ContentType, sign(e.t, fileKey, "", c)); code != http.StatusAccepted {
					e.t.Fatalf("first delivery: %d %v", code, body)
				}
				// Revoke, so that a replay taking effect would show.
				ctx := reqctx.WithActor(context.Background(), "test")
				if err := e.st.Update(ctx, func(tx store.Tx) error {
					return e.engine.MFARevoked(ctx, tx, e.ids["ada@example.com"], e.clock.now())
				}); err != nil {
					e.t.Fatal(err)
				}
			},
			req: func(e *env) string {
				c := e.claims(issFile, "app", "create", email("ada@example.com"))
				c["jti"] = "once"
				return sign(e.t, fileKey, "", c)
			},
			status: 400, code: events.ErrInvalidRequest, desc: `replayed jti "once"`,
			user: "ada@example.com", state: store.StateAwaitingMFA,
			actions: []string{joined, proven, activated, "lifecycle.mfa_revoked by test", "lifecycle.deactivate by test"},
		},
		{
			name: "replay of a SET that changed nothing",
			before: func(e *env) {
				c := e.claims(issFile, "app", "create", email("nobody@example.com"))
				c["jti"] = "idle"
				if code, body := e.push(events.ContentType, sign(e.t, fileKey, "", c)); code != http.StatusAccepted {
					e.t.Fatalf("first delivery: %d %v", code, body)
				}
			},
			req: func(e *env) string {
				c := e.claims(issFile, "app", "create", email("ada@example.com"))
				c["jti"] = "idle"
				return sign(e.t, fileKey, "", c)
			},
			status: 400, code: events.ErrInvalidRequest, desc: "replayed jti",
		},
		{
			name: "same jti from another issuer is not a replay",
			before: func(e *env) {
				c := e.claims(issURL, "password", "update", email("ada@example.com"))
				c["jti"] = "shared"
				if code, body := e.push(events.ContentType, sign(e.t, urlKey(), "", c)); code != http.StatusAccepted {
					e.t.Fatalf("first delivery: %d %v", code, body)
				}
			},
			req: func(e *env) string {
				c := e.claims(issFile, "app", "create", email("ada@example.com"))
				c["jti"] = "shared"
				return sign(e.t, fileKey, "", c)
			},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateActive, method: "set:app",
			actions: []string{joined, proven, activated},
		},
		{
			name: "no events claim",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", with(e.claims(issFile, "app", "create", email("ada@example.com")), "events", nil))
			},
			status: 400, code: events.ErrInvalidRequest, desc: "events claim is required",
		},
		{
			name: "unknown change_type",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "rotate", email("ada@example.com")))
			},
			status: 400, code: events.ErrInvalidRequest, desc: `unknown change_type "rotate"`,
		},
		{
			name: "missing credential_type",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "", "create", email("ada@example.com")))
			},
			status: 400, code: events.ErrInvalidRequest, desc: "credential_type is required",
		},
		{
			name: "no subject",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", with(e.claims(issFile, "app", "create", nil), "sub_id", nil))
			},
			status: 400, code: events.ErrInvalidRequest, desc: "no subject",
		},
		{
			name: "email subject without an address",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create", map[string]any{"format": "email"}))
			},
			status: 400, code: events.ErrInvalidRequest, desc: `email subject needs a non-empty string "email"`,
		},
		{
			name: "iss_sub subject without sub",
			req: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create", map[string]any{"format": "iss_sub", "iss": issFile}))
			},
			status: 400, code: events.ErrInvalidRequest, desc: `iss_sub subject needs a non-empty string "sub"`,
		},
		{
			name:   "not a JWS",
			raw:    &request{body: func(*env) string { return "hello" }},
			status: 400, code: events.ErrInvalidRequest, desc: "not a compact JWS",
		},
		{
			name:   "empty body",
			raw:    &request{body: func(*env) string { return "" }},
			status: 400, code: events.ErrInvalidRequest, desc: "empty body",
		},
		{
			name: "JWS JSON serialization",
			raw: &request{body: func(e *env) string {
				return `{"payload":"e30","signatures":[{"protected":"eyJhbGciOiJFZERTQSJ9","signature":"AA"}]}`
			}},
			status: 400, code: events.ErrInvalidRequest, desc: "not a compact JWS",
		},
		{
			name: "trailing newline tolerated",
			raw: &request{body: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create", email("ada@example.com"))) + "\r\n"
			}},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateActive, method: "set:app",
			actions: []string{joined, proven, activated},
		},
		{
			name: "media type parameters tolerated",
			raw: &request{contentType: "Application/SecEvent+JWT; charset=utf-8", body: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create", email("ada@example.com")))
			}},
			status: http.StatusAccepted, user: "ada@example.com", state: store.StateActive, method: "set:app",
			actions: []string{joined, proven, activated},
		},
		{
			name: "wrong content type",
			raw: &request{contentType: "application/jwt", body: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create", email("ada@example.com")))
			}},
			status: 400, code: events.ErrInvalidRequest, desc: `Content-Type must be application/secevent+jwt, got "application/jwt"`,
		},
		{
			name: "no content type",
			raw: &request{contentType: "none", body: func(e *env) string {
				return sign(e.t, fileKey, "", e.claims(issFile, "app", "create", email("ada@example.com")))
			}},
			status: 400, code: events.ErrInvalidRequest, desc: "Content-Type must be",
		},
		{
			name: "oversize body",
			raw: &request{body: func(e *env) string {
				c := e.claims(issFile, "app", "create", email("ada@example.com"))
				c["padding"] = strings.Repeat("x", events.MaxBodyBytes)
				return sign(e.t, fileKey, "", c)
			}},
			status: http.StatusRequestEntityTooLarge, code: events.ErrInvalidRequest, desc: "larger than 65536 bytes",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tc.before != nil {
				tc.before(e)
			}
			seq := e.auditCount()
			user, state, actions := tc.user, tc.state, tc.actions
			if user == "" { // a refusal without a case-specific check: ada is untouched
				user, state, actions = "ada@example.com", store.StateAwaitingMFA, []string{joined}
			}
			prior := e.actions(user)
			ct, body := events.ContentType, ""
			if tc.raw != nil {
				body = tc.raw.body(e)
				switch tc.raw.contentType {
				case "":
				case "none":
					ct = ""
				default:
					ct = tc.raw.contentType
				}
			} else {
				body = tc.req(e)
			}
			status, got := e.push(ct, body)
			if status != tc.status {
				t.Fatalf("status = %d (%v), want %d\nlog:\n%s", status, got, tc.status, e.logs)
			}
			switch {
			case tc.code == "" && got != nil:
				t.Errorf("body = %v, want none", got)
			case tc.code != "" && (got["err"] != tc.code || !strings.Contains(got["description"], tc.desc)):
				t.Errorf("body = %v, want err %q and a description with %q", got, tc.code, tc.desc)
			}
			idn := e.identity(user)
			if idn.State != state || idn.MFAMethod != tc.method {
				t.Errorf("%s: state %s, MFA %q; want %s, %q", user, idn.State, idn.MFAMethod, state, tc.method)
			}
			if got := e.actions(user); !slices.Equal(got, actions) {
				t.Errorf("%s audit actions = %q, want %q", user, got, actions)
			}
			// Nothing was written about anyone else.
			if n, mine := e.auditCount()-seq, int64(len(actions)-len(prior)); n != mine {
				t.Errorf("%d new audit records, want %d (those about %s)", n, mine, user)
			}
		})
	}
}

// A refused SET records nothing: the same jti, sent valid, is accepted.
func TestRefusalRecordsNoJTI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.claims(issFile, "app", "create", email("ada@example.com"))
	for _, bad := range []map[string]any{
		with(c, "aud", "other"),
		with(c, "iat", e.clock.now().Add(-time.Hour).Unix()),
		with(c, "events", map[string]any{ccURI: map[string]any{"credential_type": "app", "change_type": "bogus"}}),
	} {
		if code, body := e.push(events.ContentType, sign(t, fileKey, "", bad)); code != http.StatusBadRequest {
			t.Fatalf("bad SET: %d %v", code, body)
		}
	}
	if code, body := e.push(events.ContentType, sign(t, impostor, "", c)); code != http.StatusBadRequest {
		t.Fatalf("impostor: %d %v", code, body)
	}
	if code, body := e.push(events.ContentType, sign(t, fileKey, "", c)); code != http.StatusAccepted {
		t.Fatalf("valid SET with the refused ones' jti: %d %v", code, body)
	}
	if idn := e.identity("ada@example.com"); idn.State != store.StateActive {
		t.Fatalf("ada: %s", idn.State)
	}
}

// An ambiguous subject is not proven, but a revocation reaches every match
// (it fails closed).
func TestAmbiguousRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.prove("eve1")
	e.prove("eve2")
	c := e.claims(issFile, "fido2-platform", "delete", email("SHARED@example.com"))
	if code, body := e.push(events.ContentType, sign(t, fileKey, "", c)); code != http.StatusAccepted {
		t.Fatalf("delete: %d %v", code, body)
	}
	for _, u := range []string{"eve1", "eve2"} {
		if idn := e.identity(u); idn.State != store.StateAwaitingMFA || idn.MFAMethod != "" {
			t.Errorf("%s after an ambiguous delete: %s %q", u, idn.State, idn.MFAMethod)
		}
	}
}

// An unknown kid refetches the jwks_url at most once per MinJWKSReload:
// the rotated key is found once that time has passed.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rotated := edKey("ed-rotated")
	push := func(k testKey, user string) (int, map[string]string) {
		return e.push(events.ContentType, sign(t, k, "", e.claims(issURL, "app", "create", email(user))))
	}
	if code, body := push(urlKey(), "ada@example.com"); code != http.StatusAccepted {
		t.Fatalf("first SET: %d %v", code, body)
	}
	if n := e.jwks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after the first SET, want 1", n)
	}
	// The provider rotates; a SET under the new kid arrives at once. The
	// key set was fetched less than a minute ago: no refetch, refused.
	e.jwks.serve(http.StatusOK, urlKey(), rotated)
	code, body := push(rotated, "bob")
	if code != http.StatusBadRequest || body["err"] != events.ErrInvalidKey {
		t.Fatalf("rotated kid within a minute: %d %v", code, body)
	}
	if n := e.jwks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want still 1", n)
	}
	e.clock.advance(events.MinJWKSReload)
	if code, body := push(rotated, "bob"); code != http.StatusAccepted {
		t.Fatalf("rotated kid after a minute: %d %v", code, body)
	}
	if n := e.jwks.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// Made-up kids do not refetch within the minute.
	for i := range 3 {
		code, body := push(edKey(fmt.Sprint("made-up-", i)), "frank")
		if code != http.StatusBadRequest || body["err"] != events.ErrInvalidKey {
			t.Fatalf("made-up kid: %d %v", code, body)
		}
	}
	if n := e.jwks.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after made-up kids, want 2", n)
	}
	// The periodic refresh drops a key the provider retired.
	e.jwks.serve(http.StatusOK, rotated)
	e.clock.advance(15 * time.Minute)
	code, body = push(urlKey(), "frank")
	if code != http.StatusBadRequest || body["err"] != events.ErrInvalidKey {
		t.Fatalf("retired key after the refresh: %d %v", code, body)
	}
	if n := e.jwks.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
	// A failed refresh keeps the keys it had.
	e.jwks.serve(http.StatusInternalServerError)
	e.clock.advance(15 * time.Minute)
	if code, body := push(rotated, "frank"); code != http.StatusAccepted {
		t.Fatalf("after a failed refresh: %d %v", code, body)
	}
	if n := e.jwks.fetches.Load(); n != 4 {
		t.Fatalf("%d fetches, want 4", n)
	}
}

// A jwks_url that never answered leaves the SET unverifiable: 503, so the
// provider retries, and nothing is recorded.
func TestKeySetUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.jwks.serve(http.StatusBadGateway)
	c := e.claims(issURL, "app", "create", email("ada@example.com"))
	req := httptest.NewRequest("POST", events.Path, strings.NewReader(sign(t, urlKey(), "", c)))
	req.Header.Set("Content-Type", events.ContentType)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	e.jwks.serve(http.StatusOK, urlKey())
	e.clock.advance(events.MinJWKSReload)
	c["iat"] = e.clock.now().Unix()
	if code, body := e.push(events.ContentType, sign(t, urlKey(), "", c)); code != http.StatusAccepted {
		t.Fatalf("the same SET once the key set answers: %d %v", code, body)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", events.Path, http.StatusMethodNotAllowed},
		{"PUT", events.Path, http.StatusMethodNotAllowed},
		{"POST", events.Path + "/x", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Header.Set("Content-Type", events.ContentType)
		e.h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
	}
}

func TestInitErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", string(jwks(fileKey)))
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	engine := &workflows.Engine{Now: time.Now}
	d := config.DefaultEventIssuer()
	iss := func(file string, algs ...string) config.EventIssuer {
		if algs == nil {
			algs = d.Algorithms
		}
		return config.EventIssuer{Issuer: "i", Audience: "a", JWKSFile: file, Algorithms: algs, MaxAge: d.MaxAge}
	}
	tests := []struct {
		name    string
		issuers []config.EventIssuer
		want    string
	}{
		{"missing file", []config.EventIssuer{iss(filepath.Join(dir, "absent.json"))}, "absent.json"},
		{"not JSON", []config.EventIssuer{iss(write("bad.json", "{"))}, "invalid JWKS"},
		{"only a symmetric key", []config.EventIssuer{iss(write("sym.json", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))},
			"no public signature key"},
		{"HMAC allowed", []config.EventIssuer{iss(good, "HS256")}, `algorithm "HS256" is not allowed`},
		{"duplicate issuer", []config.EventIssuer{iss(good), iss(good)}, `issuer "i" is configured twice`},
		{"no source", []config.EventIssuer{{Issuer: "i", Audience: "a"}}, "exactly one of jwks_file and jwks_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &events.Receiver{Store: st, Engine: engine, Issuers: tc.issuers, Log: slog.New(slog.DiscardHandler)}
			err := r.Init()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Init = %v, want an error with %q", err, tc.want)
			}
			// The handler refuses everything rather than half-working.
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", events.Path, strings.NewReader("x.y.z"))
			req.Header.Set("Content-Type", events.ContentType)
			r.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusInternalServerError {
				t.Fatalf("handler after a failed Init: %d", rec.Code)
			}
			body, _ := io.ReadAll(rec.Body)
			if strings.Contains(string(body), dir) {
				t.Errorf("response leaks the file path: %q", body)
			}
		})
	}
}
