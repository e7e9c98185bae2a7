// Package jwks keeps a JSON Web Key Set that verifiers (bearer JWTs in
// internal/auth, Security Event Tokens in internal/events) check signatures
// against: loaded from a file or fetched from a URL, refreshed lazily, and
// never reloaded twice within MinReload, so a flood of tokens naming
// made-up key ids cannot flood the identity provider.
package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// MinReload is the shortest interval between two loads, whether for
	// the periodic refresh, an unknown key id, or a failed load.
	MinReload = time.Minute
	// Timeout bounds one load.
	Timeout = 10 * time.Second
	// MaxBytes bounds a key set document.
	MaxBytes = 1 << 20
)

// Fetch GETs a key set document from url.
func Fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", url, MaxBytes)
	}
	return data, nil
}

// Parse decodes a key set and keeps the public signature keys: private
// halves are dropped, and symmetric and encryption keys ignored.
func Parse(data []byte) ([]jose.JSONWebKey, error) {
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
			continue // symmetric or unusable
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no public signature key")
	}
	return keys, nil
}

// Cache is a key set kept fresh. Safe for concurrent use.
type Cache struct {
	source  string                                    // the file or URL, for messages
	load    func(ctx context.Context) ([]byte, error) // nil: the keys never change
	refresh time.Duration

	loadMu sync.Mutex // serialises loads

	mu        sync.Mutex // guards the fields below
	keys      []jose.JSONWebKey
	loaded    time.Time // last successful load
	attempted time.Time // last load attempt
	loadErr   error     // error of the last attempt, if it failed
}

// NewCache returns a cache of the keys load returns, refreshed once they
// are refresh old and when no key matches a token. initial, when set, is
// used until the first load (which then happens at first use); a nil
// load keeps initial for good. source names the keys in messages.
func NewCache(source string, load func(ctx context.Context) ([]byte, error), refresh time.Duration, initial []jose.JSONWebKey) *Cache {
	return &Cache{source: source, load: load, refresh: refresh, keys: initial}
}

// Source names where the keys come from.
func (c *Cache) Source() string { return c.source }

// Keys returns the keys that may have signed a token with that key id (any
// key when kid is "") and algorithm, reloading first when the set is stale
// and again (rate-limited) when none matches: the provider may have rotated
// its keys. have is false when no key set was ever loaded; loadErr is then
// why.
func (c *Cache) Keys(ctx context.Context, kid, alg string, now time.Time) (cands []jose.JSONWebKey, have bool, loadErr error) {
	if c.load != nil {
		keys, loaded, _ := c.snapshot()
		if keys == nil || loaded.IsZero() || now.Sub(loaded) >= c.refresh || now.Before(loaded) {
			// Block only when there is nothing to verify with yet.
			c.reload(ctx, now, keys == nil)
		}
	}
	keys, _, _ := c.snapshot()
	cands = candidates(keys, kid, alg)
	if len(cands) == 0 && c.load != nil {
		c.reload(ctx, now, true)
		keys, _, _ = c.snapshot()
		cands = candidates(keys, kid, alg)
	}
	_, _, loadErr = c.snapshot()
	return cands, keys != nil, loadErr
}

// reload loads the key set unless an attempt was made less than MinReload
// before now (a clock that went back counts as not recent). With wait
// false it gives up at once if another load is running. The load outlives
// a cancelled ctx, bounded by Timeout: its result serves every caller. A
// failed load keeps the previous keys.
func (c *Cache) reload(ctx context.Context, now time.Time, wait bool) {
	if wait {
		c.loadMu.Lock()
	} else if !c.loadMu.TryLock() {
		return
	}
	defer c.loadMu.Unlock()
	c.mu.Lock()
	recent := !c.attempted.IsZero() && !now.Before(c.attempted) && now.Sub(c.attempted) < MinReload
	if !recent {
		c.attempted = now
	}
	c.mu.Unlock()
	if recent {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
	defer cancel()
	data, err := c.load(ctx)
	var keys []jose.JSONWebKey
	if err == nil {
		keys, err = Parse(data)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.loadErr = err
		return
	}
	c.keys, c.loaded, c.loadErr = keys, now, nil
}

func (c *Cache) snapshot() ([]jose.JSONWebKey, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys, c.loaded, c.loadErr
}

// candidates returns the keys that may have signed with that key id and
// algorithm.
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
