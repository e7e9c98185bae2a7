package webhook

import (
	"encoding/pem"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/connectors/connectortest"
)

const testAPIKey = "k-7f3c1e9a-api-key-never-logged"

// writeCA writes the certificate of a TLS test server as a PEM file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// openConn opens a connector named name on rc with the package's public
// configuration path (Factory, then Open).
func openConn(t *testing.T, ks *KeySet, rc *receiver, name string, log *slog.Logger) *Conn {
	t.Helper()
	cfg := Factory(ks)().(*Config)
	cfg.URL = rc.srv.URL + "/jmlgate/events?token=q-secret-in-query"
	cfg.Timeout = 5 * time.Second
	if rc.apiKey != "" {
		cfg.Headers = map[string]Secret{"X-Api-Key": Secret(rc.apiKey)}
	}
	if rc.srv.TLS != nil {
		cfg.TLS.CAFile = writeCA(t, rc.srv)
	}
	c, err := cfg.Open(name, log)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c.(*Conn)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tls  bool
	}{
		{"http-loopback", false},
		{"https-ca_file", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// One gateway-wide key set for all targets, as in jmlgate.
			ks, jwks := newTestKeySet(t)
			connectortest.Run(t, func(t *testing.T) connectortest.Target {
				rc := newReceiver(t, jwks.URL, "app", testAPIKey, tc.tls)
				t.Cleanup(func() {
					// Every request the connector sent was signed, verified
					// and well formed: the suite sees effects, this sees how.
					for _, err := range rc.Rejected() {
						t.Errorf("receiver rejected a delivery: %v", err)
					}
				})
				return connectortest.Target{
					Conn:         openConn(t, ks, rc, "app", nil),
					Inspect:      rc.Inspect,
					Entitlements: []string{"role:viewer", "role:editor", "license:pro"},
					MissingRef:   "00000000-0000-4000-8000-999999999999",
					Fail:         rc.Fail,
					Hang:         rc.Hang,
				}
			})
		})
	}
}

var _ connectors.Connector = (*Conn)(nil)
