package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"slices"

	"golang.org/x/time/rate"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/connectors/postgres"
	scimconn "github.com/jmlgate/jmlgate/connectors/scim"
	"github.com/jmlgate/jmlgate/connectors/webhook"
	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/workflows"
)

// connectorTypes is the explicit registry of connector types. The webhook
// factory needs the gateway's signing keys, loaded only when a webhook
// connector is configured (keys is nil otherwise).
func connectorTypes(keys *webhook.KeySet) map[string]connectors.Factory {
	return map[string]connectors.Factory{
		"scim":     scimconn.NewConfig,
		"webhook":  webhook.Factory(keys),
		"postgres": postgres.NewConfig,
	}
}

// typeNames lists the registered types, sorted, for messages.
func typeNames() []string {
	var out []string
	for name := range connectorTypes(nil) {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// webhookKeys loads (creating on first use) the webhook signing keys when a
// webhook connector is configured; nil otherwise.
func webhookKeys(cfg *config.Config) (*webhook.KeySet, error) {
	if !slices.ContainsFunc(cfg.Connectors, func(c config.Connector) bool { return c.Type == "webhook" }) {
		return nil, nil
	}
	path := cfg.Webhooks.KeyFile
	if path == "" {
		path = filepath.Join(filepath.Dir(cfg.Store.Path), "jmlgate-webhook.jwks")
	}
	ks, err := webhook.LoadOrCreateKeySet(path)
	if err != nil {
		return nil, fmt.Errorf("webhooks.key_file: %w", err)
	}
	return ks, nil
}

// openTargets checks and opens every configured connector, reporting the
// problems of all of them at once. Opening does no I/O against the targets:
// one that is down at start-up is a delivery problem, not a start-up one.
func openTargets(cfg *config.Config, keys *webhook.KeySet, log *slog.Logger) (map[string]*workflows.Target, error) {
	if err := cfg.CheckConnectors(typeNames()); err != nil {
		return nil, err
	}
	types := connectorTypes(keys)
	targets := map[string]*workflows.Target{}
	var errs []error
	for i, cn := range cfg.Connectors {
		path := fmt.Sprintf("connectors[%d].config", i)
		c := types[cn.Type]()
		if err := cfg.DecodeSection(path, cn.Config, c); err != nil {
			errs = append(errs, err)
			continue
		}
		conn, err := c.Open(cn.Name, log.With("connector", cn.Name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", path, cn.Name, err))
			continue
		}
		t := &workflows.Target{
			Name: cn.Name, Type: cn.Type, Conn: conn, Concurrency: cn.Concurrency,
			MaxAttempts: cn.MaxAttempts, Drift: cn.Drift, ReconcileInterval: cn.ReconcileInterval.D(),
		}
		if cn.Rate > 0 {
			burst := cn.Burst
			if burst == 0 {
				burst = max(1, int(math.Ceil(cn.Rate)))
			}
			t.Limiter = rate.NewLimiter(rate.Limit(cn.Rate), burst)
		}
		targets[cn.Name] = t
	}
	if len(errs) > 0 {
		closeTargets(targets)
		return nil, errors.Join(errs...)
	}
	return targets, nil
}

// closeTargets releases connectors that hold resources (connection pools).
func closeTargets(targets map[string]*workflows.Target) {
	for _, t := range targets {
		switch c := t.Conn.(type) {
		case io.Closer:
			_ = c.Close()
		case interface{ Close() }:
			c.Close()
		}
	}
}

// webhookJWKSPath serves the public keys webhook receivers verify with.
const webhookJWKSPath = "/api/v1/webhooks/jwks.json"
