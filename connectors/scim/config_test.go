package scim

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/jmlgate/jmlgate/connectors"
)

// decode reads a YAML section onto NewConfig() the way cmd does: strictly.
func decode(t *testing.T, src string) (*Config, error) {
	t.Helper()
	c := NewConfig().(*Config)
	err := yaml.UnmarshalWithOptions([]byte(src), c, yaml.DisallowUnknownField())
	return c, err
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := decode(t, "base_url: https://api.example.com/scim/v2/\ntoken: abc\n")
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Timeout) != 10*time.Second || c.PageSize != 100 || c.CreateGroups || c.AdoptExisting || c.TLS.InsecureSkipVerify {
		t.Fatalf("defaults: %+v", c)
	}
	conn, err := c.Open("x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.(*Conn).base; got != "https://api.example.com/scim/v2" {
		t.Errorf("base = %q, want the trailing slash trimmed", got)
	}
	full, err := decode(t, `
base_url: https://api.example.com/scim/v2
oauth2:
  token_url: https://idp.example.com/token
  client_id: jmlgate
  client_secret: s
  scopes: [a, b]
tls:
  insecure_skip_verify: false
timeout: 1m30s
page_size: 500
create_groups: true
adopt_existing: true
`)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(full.Timeout) != 90*time.Second || full.PageSize != 500 || !full.CreateGroups || !full.AdoptExisting ||
		full.OAuth2 == nil || string(full.OAuth2.ClientSecret) != "s" || !slices.Equal(full.OAuth2.Scopes, []string{"a", "b"}) {
		t.Fatalf("decoded %+v %+v", full, full.OAuth2)
	}
	if _, err := full.Open("x", nil); err != nil {
		t.Fatal(err)
	}
}

// Open reports every problem at once, each starting with its yaml key.
func TestConfigValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		yaml string
		// want are the messages Open must report (substrings), all of
		// them; nil means the configuration is valid.
		want []string
		// decodeErr is set when the YAML itself must be refused.
		decodeErr string
	}{
		{name: "Minimal", yaml: "base_url: https://h/scim\ntoken: t"},
		{name: "LoopbackHTTP", yaml: "base_url: http://127.0.0.1:8080/scim\ntoken: t"},
		{name: "LoopbackHTTP6", yaml: "base_url: http://[::1]:8080/scim\ntoken: t"},
		{name: "LocalhostHTTP", yaml: "base_url: http://localhost/scim\ntoken: t"},
		{name: "Empty", yaml: "{}", want: []string{"base_url: required", "token: exactly one of token and oauth2 is required, neither is set"}},
		{name: "Both", yaml: "base_url: https://h\ntoken: t\noauth2: {token_url: https://i/t, client_id: c, client_secret: s}",
			want: []string{"token: exactly one of token and oauth2 is required, both are set"}},
		{name: "HTTPNotLoopback", yaml: "base_url: http://scim.example.com/v2\ntoken: t", want: []string{"base_url: must be an https URL"}},
		{name: "HTTPPrivateAddress", yaml: "base_url: http://10.0.0.1/v2\ntoken: t", want: []string{"base_url: must be an https URL"}},
		{name: "OtherScheme", yaml: "base_url: ftp://h/v2\ntoken: t", want: []string{"base_url: must be an https URL"}},
		{name: "Relative", yaml: "base_url: /scim/v2\ntoken: t", want: []string{"base_url: must be an absolute URL"}},
		{name: "Credentials", yaml: "base_url: https://u:p@h/v2\ntoken: t", want: []string{"base_url: must not hold credentials"}},
		{name: "Query", yaml: "base_url: https://h/v2?x=1\ntoken: t", want: []string{"base_url: must not have a query"}},
		{name: "TokenWithSpace", yaml: "base_url: https://h\ntoken: 'Bearer abc'", want: []string{"token: must not contain white space"}},
		{name: "TokenB64Chars", yaml: "base_url: https://h\ntoken: 'aZ09-._~+/=='"},
		{name: "TokenWithComma", yaml: "base_url: https://h\ntoken: 'abc,def'", want: []string{"token: must be an RFC 6750 bearer token"}},
		{name: "TokenWithQuote", yaml: "base_url: https://h\ntoken: 'abc\"def'", want: []string{"token: must be an RFC 6750 bearer token"}},
		{name: "TokenPaddingInside", yaml: "base_url: https://h\ntoken: 'abc=def'", want: []string{"token: must be an RFC 6750 bearer token"}},
		{name: "TokenOnlyPadding", yaml: "base_url: https://h\ntoken: '=='", want: []string{"token: must be an RFC 6750 bearer token"}},
		{name: "TokenNonASCII", yaml: "base_url: https://h\ntoken: 'tökén'", want: []string{"token: must be an RFC 6750 bearer token"}},
		{name: "OAuth2Incomplete", yaml: "base_url: https://h\noauth2: {token_url: 'http://idp.example.com/t', scopes: ['', 'ok']}",
			want: []string{"oauth2.token_url: must be an https URL", "oauth2.client_id: required", "oauth2.client_secret: required", "oauth2.scopes[0]:"}},
		{name: "OAuth2NoTokenURL", yaml: "base_url: https://h\noauth2: {client_id: c, client_secret: s}", want: []string{"oauth2.token_url: required"}},
		{name: "ZeroTimeout", yaml: "base_url: https://h\ntoken: t\ntimeout: 0s", want: []string{"timeout: must be between"}},
		{name: "NegativeTimeout", yaml: "base_url: https://h\ntoken: t\ntimeout: -5s", want: []string{"timeout: must be between"}},
		{name: "HugeTimeout", yaml: "base_url: https://h\ntoken: t\ntimeout: 1h", want: []string{"timeout: must be between"}},
		{name: "TimeoutWithoutUnit", yaml: "base_url: https://h\ntoken: t\ntimeout: 10", decodeErr: `want a duration like "10s"`},
		{name: "TimeoutNotDuration", yaml: "base_url: https://h\ntoken: t\ntimeout: soon", decodeErr: `got "soon"`},
		{name: "PageSize", yaml: "base_url: https://h\ntoken: t\npage_size: 0", want: []string{"page_size: must be between 1 and 1000, got 0"}},
		{name: "PageSizeHuge", yaml: "base_url: https://h\ntoken: t\npage_size: 5000", want: []string{"page_size: must be between 1 and 1000, got 5000"}},
		{name: "CAFileMissing", yaml: "base_url: https://h\ntoken: t\ntls: {ca_file: " + filepath.Join(dir, "nope.pem") + "}", want: []string{"tls.ca_file: open "}},
		{name: "CAFileNotPEM", yaml: "base_url: https://h\ntoken: t\ntls: {ca_file: " + notPEM + "}", want: []string{"tls.ca_file: " + notPEM + " holds no PEM certificate"}},
		{name: "UnknownKey", yaml: "base_url: https://h\ntoken: t\nbearer: x", decodeErr: "unknown field"},
		{
			name: "EverythingWrong",
			yaml: "base_url: http://h\noauth2: {token_url: ftp://x}\ntimeout: 0s\npage_size: -1\ntls: {ca_file: " + notPEM + "}",
			want: []string{"base_url:", "oauth2.token_url:", "oauth2.client_id:", "oauth2.client_secret:", "timeout:", "page_size:", "tls.ca_file:"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := decode(t, tc.yaml)
			if tc.decodeErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.decodeErr) {
					t.Fatalf("decode error = %v, want one containing %q", err, tc.decodeErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			conn, err := c.Open("x", nil)
			if tc.want == nil {
				if err != nil || conn == nil {
					t.Fatalf("Open = %v, %v; want a connector", conn, err)
				}
				return
			}
			if err == nil {
				t.Fatal("Open succeeded")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("Open reported %d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
					t.Errorf("no problem starting %q in:\n%v", w, err)
				}
			}
		})
	}
}

// Secrets never show: not in Open's errors, fmt of the config with any
// verb, JSON, YAML, or slog.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	const token, secret = "tok-AAAA-never-print", "sec-BBBB-never-print"
	c := NewConfig().(*Config)
	c.BaseURL = "http://scim.example.com" // invalid, so Open fails
	c.Token = token
	c.OAuth2 = &OAuth2{TokenURL: "https://idp.example.com/t", ClientID: "id", ClientSecret: secret}
	_, err := c.Open("x", nil)
	if err == nil {
		t.Fatal("Open succeeded")
	}
	js, _ := json.Marshal(c)
	ys, _ := yaml.Marshal(c)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c, "token", c.Token, "oauth2", c.OAuth2)
	shown := map[string]string{
		"err":         err.Error(),
		"%+v":         fmt.Sprintf("%+v", c),
		"%v":          fmt.Sprintf("%v", *c),
		"%#v":         fmt.Sprintf("%#v", *c),
		"%+v oauth2":  fmt.Sprintf("%+v", *c.OAuth2),
		"%s token":    fmt.Sprintf("%s", c.Token),
		"%q token":    fmt.Sprintf("%q", c.Token),
		"%x token":    fmt.Sprintf("%x", c.Token),
		"%#v token":   fmt.Sprintf("%#v", c.Token),
		"%10.3s":      fmt.Sprintf("%10.3s", c.OAuth2.ClientSecret),
		"json":        string(js),
		"yaml":        string(ys),
		"slog":        logged.String(),
		"String":      c.Token.String(),
		"GoString":    c.OAuth2.ClientSecret.GoString(),
		"errors.Join": errors.Join(err, fmt.Errorf("wrapped: %v", c)).Error(),
	}
	for how, s := range shown {
		if strings.Contains(s, token) || strings.Contains(s, secret) || strings.Contains(s, "AAAA") || strings.Contains(s, "BBBB") {
			t.Errorf("%s shows a secret: %s", how, s)
		}
	}
	if !strings.Contains(shown["%+v oauth2"], "[redacted]") || !strings.Contains(shown["json"], "[redacted]") {
		t.Errorf("secrets should read %q: %s / %s", "[redacted]", shown["%+v oauth2"], shown["json"])
	}
	// Decoding is unaffected by the redacting marshalers.
	back, err := decode(t, "base_url: https://h\ntoken: "+token)
	if err != nil || string(back.Token) != token {
		t.Fatalf("decoded token %q, %v", string(back.Token), err)
	}
}

// TLS verification is on by default; tls.ca_file adds a trusted CA;
// tls.insecure_skip_verify turns it off only when set, with a warning.
func TestTLS(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(tlsSrv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		tls      TLS
		class    connectors.Class // when wantErr
		wantErr  bool
		wantWarn bool
	}{
		{name: "VerifiedByDefault", wantErr: true, class: connectors.Permanent},
		{name: "CAFile", tls: TLS{CAFile: caFile}},
		{name: "InsecureSkipVerify", tls: TLS{InsecureSkipVerify: true}, wantWarn: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := s.config()
			cfg.BaseURL = tlsSrv.URL + "/scim/v2"
			cfg.TLS = tc.tls
			var logged bytes.Buffer
			conn, err := cfg.Open("tls-test", slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(logged.String(), "level=WARN") && strings.Contains(logged.String(), "insecure_skip_verify")
			if warned != tc.wantWarn {
				t.Errorf("warning logged = %v, want %v: %s", warned, tc.wantWarn, logged.String())
			}
			if strings.Contains(logged.String(), testToken) {
				t.Errorf("log shows the token: %s", logged.String())
			}
			_, err = conn.EnsureAccount(testCtx(t), testAccount(1, tc.name+"@example.com"))
			if tc.wantErr {
				wantClass(t, err, tc.class, 0)
				return
			}
			if err != nil {
				t.Fatalf("EnsureAccount over TLS: %v", err)
			}
		})
	}
}
