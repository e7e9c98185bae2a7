package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

// headerSecret is a header value no error, log or formatting may show.
const headerSecret = "hv-5b1e-do-not-show"

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	ks, _ := newTestKeySet(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}

	valid := func() *Config {
		c := Factory(ks)().(*Config)
		c.URL = "https://app.example.com/jmlgate/events"
		c.Headers = map[string]Secret{"X-Api-Key": headerSecret}
		return c
	}
	tests := []struct {
		name string
		edit func(c *Config)
		open string // connector name; "app" when empty
		want []string
	}{
		{"valid https", func(c *Config) {}, "", nil},
		{"valid http loopback", func(c *Config) { c.URL = "http://127.0.0.1:8081/hook" }, "", nil},
		{"valid http localhost", func(c *Config) { c.URL = "http://localhost/hook" }, "", nil},
		{"valid http ::1", func(c *Config) { c.URL = "http://[::1]:9000/hook" }, "", nil},
		{"valid no headers", func(c *Config) { c.Headers = nil }, "", nil},
		{"url missing", func(c *Config) { c.URL = "" }, "", []string{"url: is required"}},
		{"http to a remote host", func(c *Config) { c.URL = "http://app.example.com/hook" }, "", []string{"url: must be https"}},
		{"http to a host named like loopback", func(c *Config) { c.URL = "http://127.0.0.1.example.com/hook" }, "", []string{"url: must be https"}},
		{"ftp", func(c *Config) { c.URL = "ftp://app.example.com/hook" }, "", []string{"url: must be an https URL"}},
		{"relative", func(c *Config) { c.URL = "/hook" }, "", []string{"url: must be an https URL"}},
		{"no host", func(c *Config) { c.URL = "https:///hook" }, "", []string{"url: has no host"}},
		{"credentials in url", func(c *Config) { c.URL = "https://user:pw-secret@app.example.com/" }, "", []string{"url: must not contain a user name or password"}},
		{"fragment", func(c *Config) { c.URL = "https://app.example.com/hook#x" }, "", []string{"url: must not have a fragment"}},
		{"unparsable", func(c *Config) { c.URL = "https://app.example.com:port/\x7f" }, "", []string{"url: is not a valid URL"}},
		{"timeout zero", func(c *Config) { c.Timeout = 0 }, "", []string{"timeout: must be a positive duration"}},
		{"timeout negative", func(c *Config) { c.Timeout = -time.Second }, "", []string{"timeout: must be a positive duration"}},
		{"timeout too long", func(c *Config) { c.Timeout = time.Hour }, "", []string{"timeout: must be at most 5m0s"}},
		{"keys nil", func(c *Config) { c.Keys = nil }, "", []string{"keys: no signing key set"}},
		{"connector name empty", func(c *Config) {}, "-", []string{"name: must not be empty"}},
		{"header name invalid", func(c *Config) { c.Headers = map[string]Secret{"X Api Key": headerSecret} }, "",
			[]string{`headers: "X Api Key" is not a valid header name`}},
		{"header reserved", func(c *Config) { c.Headers = map[string]Secret{"content-type": headerSecret} }, "",
			[]string{"headers.content-type: is set by the connector"}},
		{"header repeated", func(c *Config) {
			c.Headers = map[string]Secret{"X-Api-Key": headerSecret, "x-api-key": headerSecret + "2"}
		}, "", []string{"headers.x-api-key: repeats another header name"}},
		{"header value empty", func(c *Config) { c.Headers = map[string]Secret{"X-Api-Key": " "} }, "",
			[]string{"headers.X-Api-Key: value is empty"}},
		{"header value injects a header", func(c *Config) {
			c.Headers = map[string]Secret{"X-Api-Key": headerSecret + "\r\nX-Evil: 1"}
		}, "", []string{"headers.X-Api-Key: value contains a control character"}},
		{"header value padded", func(c *Config) { c.Headers = map[string]Secret{"X-Api-Key": headerSecret + " "} }, "",
			[]string{"headers.X-Api-Key: value has leading or trailing white space"}},
		{"ca_file missing", func(c *Config) { c.TLS.CAFile = filepath.Join(dir, "nope.pem") }, "", []string{"tls.ca_file: "}},
		{"ca_file not PEM", func(c *Config) { c.TLS.CAFile = notPEM }, "", []string{"tls.ca_file: " + notPEM + " holds no PEM certificate"}},
		{"tls with http", func(c *Config) { c.URL = "http://127.0.0.1/hook"; c.TLS.InsecureSkipVerify = true }, "",
			[]string{"tls: is set but url is not https"}},
		{"everything wrong at once", func(c *Config) {
			c.URL = "http://app.example.com/"
			c.Timeout = 0
			c.Keys = nil
			c.Headers = map[string]Secret{"Host": headerSecret, "X-Token": headerSecret + "\n"}
			c.TLS.CAFile = notPEM
		}, "-", []string{
			"name: must not be empty",
			"keys: no signing key set",
			"url: must be https",
			"timeout: must be a positive duration",
			"headers.Host: is set by the connector",
			"headers.X-Token: value contains a control character",
			"tls.ca_file: ",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tc.edit(c)
			name := "app"
			if tc.open == "-" {
				name = ""
			}
			conn, err := c.Open(name, nil)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if conn == nil {
					t.Fatal("Open returned no connector")
				}
				return
			}
			if err == nil {
				t.Fatalf("Open succeeded, want %q", tc.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("%d problems reported, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w)
				}
				if !found {
					t.Errorf("no problem starting %q in:\n%v", w, err)
				}
			}
			for _, secret := range []string{headerSecret, "pw-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}

// TestConfigDecodeAndRedaction decodes a section as cmd/jmlgate does
// (goccy/go-yaml, strict) and shows the result every usual way.
func TestConfigDecodeAndRedaction(t *testing.T) {
	t.Parallel()
	ks, _ := newTestKeySet(t)
	src := `
url: https://app.example.com/events
timeout: 30s
headers:
  X-Api-Key: ` + headerSecret + `
tls:
  insecure_skip_verify: false
`
	c := Factory(ks)().(*Config)
	if err := yaml.UnmarshalWithOptions([]byte(src), c, yaml.Strict()); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if c.Timeout != 30*time.Second || c.Headers["X-Api-Key"] != headerSecret || c.Keys != ks {
		t.Fatalf("decoded %+v", c)
	}
	if _, err := c.Open("app", nil); err != nil {
		t.Fatalf("Open: %v", err)
	}
	d := Factory(ks)().(*Config)
	if err := yaml.UnmarshalWithOptions([]byte("url: https://x.example/\n"), d, yaml.Strict()); err != nil || d.Timeout != DefaultTimeout {
		t.Errorf("default timeout %v (err %v), want %v", d.Timeout, err, DefaultTimeout)
	}
	if err := yaml.UnmarshalWithOptions([]byte("keys: x\n"), Factory(ks)(), yaml.Strict()); err == nil {
		t.Error("keys decoded from YAML: the signing keys are not configuration")
	}

	js, _ := json.Marshal(c)
	ym, _ := yaml.Marshal(c)
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("config", "cfg", c, "headers", c.Headers)
	shown := map[string]string{
		"%v":   fmt.Sprintf("%v", c),
		"%+v":  fmt.Sprintf("%+v", c),
		"%#v":  fmt.Sprintf("%#v", c),
		"%s":   fmt.Sprintf("%s", c.Headers["X-Api-Key"]),
		"%q":   fmt.Sprintf("%q", c.Headers["X-Api-Key"]),
		"%x":   fmt.Sprintf("%x", c.Headers["X-Api-Key"]),
		"%d":   fmt.Sprintf("%d", c.Headers["X-Api-Key"]),
		"json": string(js),
		"yaml": string(ym),
		"slog": logBuf.String(),
	}
	for how, s := range shown {
		if strings.Contains(s, headerSecret) || strings.Contains(s, fmt.Sprintf("%x", headerSecret)) {
			t.Errorf("%s shows the header value: %s", how, s)
		}
	}
}
