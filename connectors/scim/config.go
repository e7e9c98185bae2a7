package scim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// Defaults of NewConfig.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultPageSize = 100

	maxTimeout  = 5 * time.Minute
	maxPageSize = 1000
)

// Config is the `connectors[i].config` section of a SCIM target:
//
//	base_url: https://api.example.com/scim/v2   # required; https, or http on a loopback host
//	token: ...                                  # a bearer token, or:
//	oauth2:                                     # OAuth 2.0 client credentials (RFC 6749 4.4)
//	  token_url: https://idp.example.com/oauth2/token
//	  client_id: jmlgate
//	  client_secret: ...
//	  scopes: [scim]
//	tls:
//	  ca_file: /etc/jmlgate/ca.pem              # extra CAs, added to the system roots
//	  insecure_skip_verify: false               # never in production; logged at start-up
//	timeout: 10s                                # per HTTP request
//	page_size: 100                              # count of each page ListAccounts asks for
//	create_groups: false                        # Grant creates a missing group instead of failing
//	adopt_existing: false                       # take over an account jmlgate did not create (see AdoptExisting)
//
// Exactly one of token and oauth2 is required. Secret fields are of type
// Secret, which never prints, logs or marshals its value.
type Config struct {
	BaseURL      string   `yaml:"base_url"`
	Token        Secret   `yaml:"token"`
	OAuth2       *OAuth2  `yaml:"oauth2"`
	TLS          TLS      `yaml:"tls"`
	Timeout      Duration `yaml:"timeout"`
	PageSize     int      `yaml:"page_size"`
	CreateGroups bool     `yaml:"create_groups"`
	// AdoptExisting lets EnsureAccount take over an account that has the
	// person's userName but no externalId, that is one jmlgate did not
	// create: it is adopted and its externalId set to the identity's id.
	// Off by default, because whoever created that account may have set
	// its password or enrolled a factor on it before the person arrived
	// (account pre-takeover); EnsureAccount then fails with a Conflict
	// naming this key. Turn it on when migrating a target jmlgate did not
	// provision so far, after checking who created its accounts.
	AdoptExisting bool `yaml:"adopt_existing"`
}

// OAuth2 configures the client-credentials grant. Tokens are sent with
// HTTP Basic client authentication (RFC 6749 section 2.3.1), cached until
// shortly before they expire, and fetched again once when the target
// answers 401.
type OAuth2 struct {
	TokenURL     string   `yaml:"token_url"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret Secret   `yaml:"client_secret"`
	Scopes       []string `yaml:"scopes"`
}

// TLS configures certificate verification of base_url and token_url.
type TLS struct {
	// CAFile is a PEM file of CA certificates trusted in addition to the
	// system roots (read once, at Open).
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify turns verification off. Only an explicit true
	// does; Open logs a warning when it is set.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// NewConfig returns a Config with the defaults filled in. It is the
// connectors.Factory of the "scim" connector type.
func NewConfig() connectors.Config {
	return &Config{Timeout: Duration(DefaultTimeout), PageSize: DefaultPageSize}
}

var _ connectors.Factory = NewConfig

// Open validates every field, reporting all problems at once (each message
// starts with its yaml key), and builds the connector. It reads tls.ca_file
// but does no network I/O. log may be nil.
func (c *Config) Open(name string, log *slog.Logger) (connectors.Connector, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	base, err := checkURL(c.BaseURL)
	if err != nil {
		bad("base_url: %v", err)
	}
	switch {
	case c.Token == "" && c.OAuth2 == nil:
		bad("token: exactly one of token and oauth2 is required, neither is set")
	case c.Token != "" && c.OAuth2 != nil:
		bad("token: exactly one of token and oauth2 is required, both are set")
	case c.Token != "" && strings.ContainsAny(string(c.Token), " \t\r\n"):
		bad("token: must not contain white space")
	case c.Token != "" && !validToken(string(c.Token)):
		bad("token: must be an RFC 6750 bearer token: letters, digits and -._~+/, then optional =")
	}
	if o := c.OAuth2; o != nil {
		if _, err := checkURL(o.TokenURL); err != nil {
			bad("oauth2.token_url: %v", err)
		}
		if o.ClientID == "" {
			bad("oauth2.client_id: required")
		}
		if o.ClientSecret == "" {
			bad("oauth2.client_secret: required")
		}
		for i, s := range o.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				bad("oauth2.scopes[%d]: %q is not a valid scope", i, s)
			}
		}
	}
	if d := time.Duration(c.Timeout); d <= 0 || d > maxTimeout {
		bad("timeout: must be between 1ms and %v, got %v", maxTimeout, d)
	}
	if c.PageSize < 1 || c.PageSize > maxPageSize {
		bad("page_size: must be between 1 and %d, got %d", maxPageSize, c.PageSize)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLS.CAFile != "" {
		if tlsConf.RootCAs, err = loadCAs(c.TLS.CAFile); err != nil {
			bad("tls.ca_file: %v", err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	if c.TLS.InsecureSkipVerify {
		tlsConf.InsecureSkipVerify = true
		log.Warn("scim connector: TLS certificate verification is disabled (tls.insecure_skip_verify); do not use this in production",
			"connector", name, "base_url", base.String())
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.MaxIdleConnsPerHost = 16
	client := &http.Client{
		Transport: tr,
		// A redirect is answered as the 3xx it is (a Permanent error): the
		// Authorization header is not sent on to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	conn := &Conn{
		name:         name,
		base:         strings.TrimSuffix(base.String(), "/"),
		client:       client,
		log:          log,
		timeout:      time.Duration(c.Timeout),
		pageSize:     c.PageSize,
		createGroups: c.CreateGroups,
		now:          time.Now,
		adopt:        c.AdoptExisting,
		groups:       map[string]cachedGroup{},
		createMu:     make(chan struct{}, 1),
	}
	if c.OAuth2 != nil {
		conn.auth = newTokenSource(conn, *c.OAuth2)
	} else {
		conn.auth = &staticToken{tok: c.Token}
	}
	return conn, nil
}

// checkURL accepts an absolute https URL, or an http one whose host is a
// loopback address (tests, a sidecar), without credentials, query or
// fragment.
func checkURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("must be an absolute URL with a host")
	case u.User != nil:
		return nil, errors.New("must not hold credentials (use token or oauth2)")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("must not have a query or fragment")
	case u.Scheme == "https":
	case u.Scheme == "http" && connectors.IsLoopback(u.Hostname()):
	default:
		return nil, errors.New("must be an https URL (http is allowed only for 127.0.0.1, ::1 and localhost)")
	}
	return u, nil
}

func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// Secret is a value that must not leak (see connectors.Secret).
type Secret = connectors.Secret

// Duration is a time.Duration written as a Go duration string ("10s");
// bare numbers are rejected.
type Duration = connectors.Duration
