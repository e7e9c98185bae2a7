// Package webhook is a connector for custom applications: it POSTs every
// account.ensure, account.disable, entitlement.grant and entitlement.revoke
// to one URL as an Ed25519-signed JWS (see Event for what a receiver does),
// and the application verifies it against jmlgate's public keys at
// GET /api/v1/webhooks/jwks.json (JWKSHandler over the gateway-wide KeySet).
//
// The receiver owns its accounts; the connector's ref for an account is the
// jmlgate identity id. Any 2xx acknowledges an event, including "already
// done": a receiver answers 2xx to an account.disable or entitlement.revoke
// for an account or entitlement it does not have. A 404 or 410 is never
// taken for "already gone": to a disable, revoke or ensure it means the URL
// is wrong (a revocation that reached nobody must not count as done) and
// is a Permanent error; to a grant it says the account is missing, and the
// dispatcher ensures it again (which fails Permanent if the URL is wrong).
// The connector keeps no state, so it cannot list accounts (no Lister) and
// ends no sessions (no SessionRevoker).
//
// Errors never quote a credential: the receiver's answer, and every error
// the methods return, are redacted (connectors.Redact) of the configured
// header values and of the URL's query values before they reach
// last_error, an audit record or a log.
package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// Defaults and bounds of Config.
const (
	DefaultTimeout = 10 * time.Second
	maxTimeout     = 5 * time.Minute
	// maxDrain bounds how much of a 2xx body is read to reuse the
	// connection.
	maxDrain = 64 << 10
	// maxErrorRead bounds how much of an error body is read and redacted
	// before connectors.HTTPError keeps its first 512 bytes.
	maxErrorRead = 16 << 10
)

// Config is the `config` section of a connector of type webhook:
//
//	url: https://app.example.com/jmlgate/events  # required; http only for loopback hosts
//	timeout: 10s                                 # per delivery attempt
//	headers: {X-Api-Key: "..."}                  # optional extra request headers (secret values)
//	tls: {ca_file: /etc/jmlgate/app-ca.pem, insecure_skip_verify: false}
type Config struct {
	// URL receives every event by POST.
	URL string `yaml:"url"`
	// Timeout bounds one delivery attempt, connection included.
	Timeout time.Duration `yaml:"timeout"`
	// Headers are added to every request (an API key the receiver checks
	// in addition to the signature). The values are secrets: they are
	// never logged, formatted or quoted in errors.
	Headers map[string]Secret `yaml:"headers"`
	TLS     TLS               `yaml:"tls"`

	// Keys signs the events. It is the gateway-wide KeySet, set by
	// Factory, not by YAML; Open fails without it.
	Keys *KeySet `yaml:"-"`
}

// TLS configures how the connector trusts an https receiver.
type TLS struct {
	// CAFile is a PEM bundle of the CAs to trust instead of the system
	// roots.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify disables certificate verification: for tests
	// only. The signature still protects the events; an API key in
	// Headers is then exposed to whoever intercepts the connection.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Secret is a value that must not leak (see connectors.Secret).
type Secret = connectors.Secret

// Factory returns the connectors.Factory of the webhook type: a Config with
// Timeout DefaultTimeout and Keys ks. cmd/jmlgate registers
// "webhook": webhook.Factory(ks) with the gateway's KeySet.
func Factory(ks *KeySet) connectors.Factory {
	return func() connectors.Config {
		return &Config{Timeout: DefaultTimeout, Keys: ks}
	}
}

// reservedHeaders are set by the connector or the transport; a configured
// header may not replace them.
var reservedHeaders = []string{
	"Connection", "Content-Encoding", "Content-Length", "Content-Type", "Host",
	"Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Open validates every field, reporting all problems at once (each message
// starts with its YAML key and quotes no header value), and builds the
// connector. It reads tls.ca_file but does no network I/O.
func (c *Config) Open(name string, log *slog.Logger) (connectors.Connector, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	problem := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if name == "" {
		problem("name: must not be empty")
	}
	if c.Keys == nil {
		problem("keys: no signing key set: cmd/jmlgate must register webhook.Factory(keys), not a bare Config")
	}
	u, uerr := checkURL(c.URL)
	if uerr != nil {
		errs = append(errs, uerr)
	}
	switch {
	case c.Timeout <= 0:
		problem("timeout: must be a positive duration like \"10s\"")
	case c.Timeout > maxTimeout:
		problem("timeout: must be at most %s", maxTimeout)
	}
	header := http.Header{}
	for _, k := range slices.Sorted(maps.Keys(c.Headers)) {
		v := c.Headers[k]
		key := fmt.Sprintf("headers.%s", k)
		canon := http.CanonicalHeaderKey(k)
		switch {
		case !validHeaderName(k):
			problem("headers: %q is not a valid header name", k)
			continue
		case slices.Contains(reservedHeaders, canon):
			problem("%s: is set by the connector and cannot be configured", key)
			continue
		case header.Get(canon) != "":
			problem("%s: repeats another header name (names are case-insensitive)", key)
			continue
		case strings.TrimSpace(string(v)) == "":
			problem("%s: value is empty", key)
			continue
		case strings.ContainsFunc(string(v), isCtl):
			problem("%s: value contains a control character", key)
			continue
		case strings.TrimSpace(string(v)) != string(v):
			problem("%s: value has leading or trailing white space", key)
			continue
		}
		header.Set(canon, string(v))
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLS.InsecureSkipVerify}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		switch {
		case err != nil:
			problem("tls.ca_file: %v", err)
		default:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				problem("tls.ca_file: %s holds no PEM certificate", c.TLS.CAFile)
			}
			tlsConf.RootCAs = pool
		}
	}
	if u != nil && u.Scheme == "http" && (c.TLS.CAFile != "" || c.TLS.InsecureSkipVerify) {
		problem("tls: is set but url is not https")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.TLS.InsecureSkipVerify {
		log.Warn("webhook connector does not verify the receiver's TLS certificate", "connector", name)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	return &Conn{
		name:    name,
		safeURL: (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(),
		creds:   newCreds(u, header),
		timeout: c.Timeout,
		keys:    c.Keys,
		log:     log,
		now:     time.Now,
		client: &http.Client{
			Transport: tr,
			// A receiver that redirects is misconfigured: the 3xx is
			// returned and classified permanent, and the event (with
			// any API key header) goes nowhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// checkURL validates the url key; its messages never quote the URL, whose
// query may hold a token.
func checkURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("url: is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("url: is not a valid URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Opaque != "":
		return nil, errors.New("url: must be an https URL (http only for a loopback host)")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("url: has no host")
	case u.User != nil:
		return nil, errors.New("url: must not contain a user name or password; send credentials in headers")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, errors.New("url: must not have a fragment")
	case u.Scheme == "http" && !connectors.IsLoopback(u.Hostname()):
		return nil, errors.New("url: must be https; http is allowed only for a loopback host (localhost, 127.0.0.1, ::1)")
	}
	return u, nil
}

// isCtl reports a control character, which no header value may hold
// (tab excepted).
func isCtl(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r >= 0x80 || !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// Conn is the webhook connector. Every method sends one signed event and
// returns once the receiver acknowledged it (2xx); a method is as
// idempotent as the receiver's handling of the event, which the protocol
// requires (see Event). Errors are classified: a cancelled or expired ctx
// (or the timeout of the attempt) wraps context.Canceled or
// context.DeadlineExceeded, network errors are retryable, certificate
// failures permanent, HTTP statuses as connectors.HTTPError says, except
// 404 and 410, which are Permanent for every event but a grant (see the
// package documentation). Printing a Conn (fmt, any verb; slog) shows its
// name and URL without query only.
type Conn struct {
	name    string
	safeURL string // url without query, for messages
	creds   *creds // the URL and headers, which may hold secrets
	timeout time.Duration
	keys    *KeySet
	log     *slog.Logger
	now     func() time.Time
	client  *http.Client
}

var (
	_ connectors.Connector = (*Conn)(nil)
	_ fmt.Formatter        = (*Conn)(nil)
	_ slog.LogValuer       = (*Conn)(nil)
)

// creds is what of the configuration may hold a secret: the URL (its query
// may carry a token) and the headers (an API key). It is held by pointer
// and formats as "[redacted]": fmt does not call the methods of values it
// reaches through unexported fields, so plain string fields would print
// with a Conn, while a pointer below the top level prints as an address.
type creds struct {
	url    string
	header http.Header
	// secrets are the values connectors.Redact takes out of messages:
	// every header value (and the credential after an auth scheme such
	// as "Bearer "), the URL, its query and each query value.
	secrets []string
}

func newCreds(u *url.URL, header http.Header) *creds {
	c := &creds{url: u.String(), header: header}
	add := func(v string) {
		c.secrets = append(c.secrets, v, url.QueryEscape(v))
	}
	for _, vs := range header {
		for _, v := range vs {
			add(v)
			if _, cred, ok := strings.Cut(v, " "); ok {
				add(strings.TrimSpace(cred))
			}
		}
	}
	if u.RawQuery != "" {
		c.secrets = append(c.secrets, c.url, u.RawQuery)
		for _, vs := range u.Query() {
			for _, v := range vs {
				add(v)
			}
		}
	}
	return c
}

func (*creds) String() string               { return "[redacted]" }
func (c *creds) GoString() string           { return c.String() }
func (c *creds) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }
func (c *creds) LogValue() slog.Value       { return slog.StringValue(c.String()) }

// EnsureAccount sends account.ensure and returns a.IdentityID as the ref:
// the receiver creates the account, or updates and re-enables it. A 404 or
// 410 means the URL is wrong and is Permanent.
// FindAccount reports the ref a's account has if the receiver holds one:
// the receiver owns its accounts and jmlgate cannot ask, so this is always
// found (a disable event for an account the receiver never created is
// acknowledged as already gone). It sends nothing.
func (c *Conn) FindAccount(ctx context.Context, a connectors.Account) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	if a.IdentityID == "" {
		return "", false, connectors.Errorf(connectors.Permanent, "webhook: account has no identity id")
	}
	return a.IdentityID, true, nil
}

var _ connectors.Finder = (*Conn)(nil)

func (c *Conn) EnsureAccount(ctx context.Context, a connectors.Account) (string, error) {
	if a.IdentityID == "" {
		return "", connectors.Errorf(connectors.Permanent, "webhook %s: account has no identity id", TypeEnsure)
	}
	ev := &Event{Type: TypeEnsure, Ref: a.IdentityID, Account: &EventAccount{
		IdentityID:  a.IdentityID,
		UserName:    a.UserName,
		DisplayName: a.DisplayName,
		GivenName:   a.GivenName,
		FamilyName:  a.FamilyName,
		Email:       a.Email,
	}}
	if err := wrongURL(c.send(ctx, ev)); err != nil {
		return "", err
	}
	return a.IdentityID, nil
}

// DisableAccount sends account.disable. The receiver answers 2xx for an
// account it does not have (already disabled); a 404 or 410 means the URL
// is wrong and is Permanent, so a leaver is never reported disabled by an
// answer from the wrong place.
func (c *Conn) DisableAccount(ctx context.Context, ref string) error {
	if ref == "" {
		return connectors.Errorf(connectors.Permanent, "webhook %s: empty ref", TypeDisable)
	}
	return wrongURL(c.send(ctx, &Event{Type: TypeDisable, Ref: ref}))
}

// Grant sends entitlement.grant. A 404 or 410 is NotFound: the receiver has
// no such account, and the dispatcher ensures it again.
func (c *Conn) Grant(ctx context.Context, ref, entitlement string) error {
	if ref == "" || entitlement == "" {
		return connectors.Errorf(connectors.Permanent, "webhook %s: empty ref or entitlement", TypeGrant)
	}
	return c.send(ctx, &Event{Type: TypeGrant, Ref: ref, Entitlement: entitlement})
}

// Revoke sends entitlement.revoke. The receiver answers 2xx when the
// account or the entitlement is already gone; a 404 or 410 means the URL
// is wrong and is Permanent.
func (c *Conn) Revoke(ctx context.Context, ref, entitlement string) error {
	if ref == "" || entitlement == "" {
		return connectors.Errorf(connectors.Permanent, "webhook %s: empty ref or entitlement", TypeRevoke)
	}
	return wrongURL(c.send(ctx, &Event{Type: TypeRevoke, Ref: ref, Entitlement: entitlement}))
}

// wrongURL turns a NotFound (404, 410) into a Permanent error saying the
// URL looks wrong: only a grant may read it as "no such account".
func wrongURL(err error) error {
	if !connectors.IsNotFound(err) {
		return err
	}
	return connectors.Errorf(connectors.Permanent,
		"%v; the url looks wrong: receivers acknowledge an account or entitlement that is already gone with 2xx", err)
}

// send completes ev, signs it and POSTs it once. Its error is redacted of
// every secret of the configuration (see creds).
func (c *Conn) send(ctx context.Context, ev *Event) error {
	return connectors.RedactError(c.post(ctx, ev), c.creds.secrets...)
}

func (c *Conn) post(ctx context.Context, ev *Event) error {
	op := "webhook " + ev.Type
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ev.Issuer, ev.Connector = Issuer, c.name
	now := c.now()
	ev.IssuedAt, ev.ExpiresAt = now.Unix(), now.Add(Lifetime).Unix()
	gen, haveGen := generation(ctx)
	jti, err := eventID(ev, gen, haveGen)
	if err != nil {
		return fmt.Errorf("%s: event id: %w", op, err)
	}
	ev.JTI = jti
	payload, err := json.Marshal(ev)
	if err != nil {
		return connectors.Errorf(connectors.Permanent, "%s: encode: %w", op, err)
	}
	jws, err := c.keys.Sign(payload)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.creds.url, strings.NewReader(jws))
	if err != nil {
		return connectors.Errorf(connectors.Permanent, "%s: request: %v", op, err)
	}
	req.Header.Set("Accept", "application/json, */*;q=0.5")
	req.Header.Set("User-Agent", "jmlgate-webhook")
	for k, v := range c.creds.header { // configured headers may replace the two above
		req.Header[k] = slices.Clone(v)
	}
	req.Header.Set("Content-Type", MediaType)

	resp, err := c.client.Do(req)
	if err != nil {
		return connectors.Transport(op, c.redact(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		c.log.Debug("webhook event delivered", "connector", c.name, "type", ev.Type, "jti", ev.JTI, "status", resp.StatusCode)
		return nil
	}
	// The body is redacted before HTTPError keeps its first 512 bytes,
	// so that a secret cut at that bound cannot show in part.
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorRead))
	resp.Body = io.NopCloser(strings.NewReader(connectors.Redact(string(raw), c.creds.secrets...)))
	return connectors.HTTPError(op, resp, c.now())
}

// redact replaces the URL in a *url.Error (which the client builds with
// the full URL, query included) by the URL without its query.
func (c *Conn) redact(err error) error {
	if ue, ok := err.(*url.Error); ok {
		cp := *ue
		cp.URL = c.safeURL
		return &cp
	}
	return err
}

// String names the connector and its URL without query; no header value.
func (c *Conn) String() string { return "webhook " + c.name + " " + c.safeURL }

// GoString is String, so %#v shows no field.
func (c *Conn) GoString() string { return c.String() }

// Format prints String whatever the verb.
func (c *Conn) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue logs the type, name and URL without query.
func (c *Conn) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", "webhook"), slog.String("name", c.name), slog.String("url", c.safeURL))
}
