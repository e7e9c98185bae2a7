package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Settings of the key set loader.
const (
	// MinJWKSReload is the shortest interval between two fetches of an
	// issuer's jwks_url, whether for the periodic refresh or an unknown key
	// id: a flood of SETs with made-up key ids cannot flood the provider.
	MinJWKSReload = time.Minute
	// jwksTimeout bounds one fetch of a jwks_url.
	jwksTimeout = 10 * time.Second
	// maxJWKSBytes bounds a key set document.
	maxJWKSBytes = 1 << 20
)

func defaultClient() *http.Client {
	return &http.Client{
		Timeout: jwksTimeout,
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

// keySet is one issuer's JWKS. A jwks_file is read once, by newKeySet; a
// jwks_url is fetched on first use, again once jwks_refresh has passed,
// and when a SET names an unknown key id, never twice within
// MinJWKSReload. A failed fetch keeps the previous keys.
type keySet struct {
	source  string                                    // the file or URL, for messages
	fetch   func(ctx context.Context) ([]byte, error) // nil for a file
	refresh time.Duration

	loadMu sync.Mutex // serialises fetches

	mu        sync.Mutex // guards the fields below
	keys      []jose.JSONWebKey
	loaded    time.Time // last successful fetch
	attempted time.Time // last fetch attempt
	loadErr   error     // error of the last attempt, if it failed
}

func newKeySet(file, url string, refresh time.Duration, client *http.Client) (*keySet, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		keys, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return &keySet{source: file, keys: keys}, nil
	}
	return &keySet{
		source:  url,
		refresh: refresh,
		fetch:   func(ctx context.Context) ([]byte, error) { return fetchJWKS(ctx, client, url) },
	}, nil
}

func fetchJWKS(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", url, maxJWKSBytes)
	}
	return data, nil
}

// parseJWKS decodes a key set and keeps the public signature keys: private
// halves are dropped, and symmetric and encryption keys ignored.
func parseJWKS(data []byte) ([]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("invalid JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, k := range set.Keys {
		if k.Use == "enc" {
			continue
		}
		pub := k.Public()
		if !pub.IsPublic() || !pub.Valid() {
			continue
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no public signature key")
	}
	return keys, nil
}

// reload fetches the key set unless an attempt was made less than
// MinJWKSReload before now (a clock that went back counts as not recent).
// With wait false it gives up at once if another fetch is running. The
// fetch outlives a cancelled ctx, bounded by its own timeout: its result
// serves every caller.
func (ks *keySet) reload(ctx context.Context, now time.Time, wait bool) {
	if wait {
		ks.loadMu.Lock()
	} else if !ks.loadMu.TryLock() {
		return
	}
	defer ks.loadMu.Unlock()
	ks.mu.Lock()
	recent := !ks.attempted.IsZero() && !now.Before(ks.attempted) && now.Sub(ks.attempted) < MinJWKSReload
	if !recent {
		ks.attempted = now
	}
	ks.mu.Unlock()
	if recent {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
	defer cancel()
	data, err := ks.fetch(ctx)
	var keys []jose.JSONWebKey
	if err == nil {
		keys, err = parseJWKS(data)
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if err != nil {
		ks.loadErr = err
		return
	}
	ks.keys, ks.loaded, ks.loadErr = keys, now, nil
}

func (ks *keySet) snapshot() ([]jose.JSONWebKey, time.Time, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.keys, ks.loaded, ks.loadErr
}

// candidates returns the keys that may have signed a SET with that key id
// (any key when kid is "") and algorithm.
func candidates(keys []jose.JSONWebKey, kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		out = append(out, k)
	}
	return out
}

// lookup returns the keys that may verify a SET signed with alg by the key
// kid. The errors: errUnavailable (wrapped) when no key set could ever be
// fetched; a *setError invalid_key when the set has no such key even after
// the refetch an unknown kid allows.
func (ks *keySet) lookup(ctx context.Context, kid, alg string, now time.Time) ([]jose.JSONWebKey, error) {
	if ks.fetch != nil {
		keys, loaded, _ := ks.snapshot()
		if keys == nil || now.Sub(loaded) >= ks.refresh || now.Before(loaded) {
			// Block only when there is nothing to verify with yet.
			ks.reload(ctx, now, keys == nil)
		}
	}
	keys, _, _ := ks.snapshot()
	cands := candidates(keys, kid, alg)
	if len(cands) == 0 && ks.fetch != nil {
		// Perhaps the provider rotated its keys.
		ks.reload(ctx, now, true)
		keys, _, _ = ks.snapshot()
		cands = candidates(keys, kid, alg)
	}
	if keys == nil {
		_, _, loadErr := ks.snapshot()
		return nil, fmt.Errorf("%w: %s: %v", errUnavailable, ks.source, loadErr)
	}
	if len(cands) == 0 {
		if kid == "" {
			return nil, refuse(ErrInvalidKey, "no key for %s in the issuer's key set", alg)
		}
		return nil, refuse(ErrInvalidKey, "no key with id %q for %s in the issuer's key set", clip(kid), alg)
	}
	return cands, nil
}
