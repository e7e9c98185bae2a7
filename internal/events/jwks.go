package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jmlgate/jmlgate/internal/jwks"
)

// Settings of the key set loader.
const (
	// MinJWKSReload is the shortest interval between two fetches of an
	// issuer's jwks_url, whether for the periodic refresh or an unknown key
	// id: a flood of SETs with made-up key ids cannot flood the provider.
	MinJWKSReload = jwks.MinReload
)

func defaultClient() *http.Client {
	return &http.Client{
		Timeout: jwks.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && isLoopback(req.URL.Hostname())) {
				return fmt.Errorf("redirect to %s refused: not https", req.URL.Redacted())
			}
			return nil
		},
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newKeySet returns one issuer's JWKS. A jwks_file is read once, here; a
// jwks_url is fetched on first use, again once jwks_refresh has passed, and
// when a SET names an unknown key id, never twice within MinJWKSReload. A
// failed fetch keeps the previous keys.
func newKeySet(file, url string, refresh time.Duration, client *http.Client) (*keySet, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		keys, err := jwks.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return &keySet{jwks.NewCache(file, nil, 0, keys)}, nil
	}
	fetch := func(ctx context.Context) ([]byte, error) { return jwks.Fetch(ctx, client, url) }
	return &keySet{jwks.NewCache(url, fetch, refresh, nil)}, nil
}

// keySet is one issuer's JWKS.
type keySet struct{ *jwks.Cache }

// lookup returns the keys that may verify a SET signed with alg by the key
// kid. The errors: errUnavailable (wrapped) when no key set could ever be
// fetched; a *setError invalid_key when the set has no such key even after
// the refetch an unknown kid allows.
func (ks *keySet) lookup(ctx context.Context, kid, alg string, now time.Time) ([]jose.JSONWebKey, error) {
	cands, have, loadErr := ks.Keys(ctx, kid, alg, now)
	if !have {
		return nil, fmt.Errorf("%w: %s: %v", errUnavailable, ks.Source(), loadErr)
	}
	if len(cands) == 0 {
		if kid == "" {
			return nil, refuse(ErrInvalidKey, "no key for %s in the issuer's key set", alg)
		}
		return nil, refuse(ErrInvalidKey, "no key with id %q for %s in the issuer's key set", clip(kid), alg)
	}
	return cands, nil
}
