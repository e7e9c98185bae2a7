package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

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
	var problems []config.Problem
	for i, cn := range cfg.Connectors {
		path := fmt.Sprintf("connectors[%d].config", i)
		c := types[cn.Type]()
		if err := cfg.DecodeSection(path, cn.Config, c); err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				return nil, err
			}
			problems = append(problems, ce.Problems...)
			continue
		}
		conn, err := c.Open(cn.Name, log.With("connector", cn.Name))
		if err != nil {
			problems = append(problems, openProblems(cfg, path, err)...)
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
	if len(problems) > 0 {
		closeTargets(targets)
		return nil, &config.Error{File: cfg.File(), Problems: problems}
	}
	return targets, nil
}

// openProblems turns a connector's Open error into configuration problems.
// Connectors report every problem at once (errors.Join), each message
// starting with its key ("timeout: must be positive"); those get the full
// key path and line, anything else is reported against the section.
func openProblems(cfg *config.Config, path string, err error) []config.Problem {
	var out []config.Problem
	for _, msg := range strings.Split(err.Error(), "\n") {
		msg = strings.TrimSpace(msg)
		if msg == "" {
			continue
		}
		p := config.Problem{Path: path, Message: msg}
		if key, rest, ok := strings.Cut(msg, ": "); ok && configKey.MatchString(key) {
			p.Path, p.Message = path+"."+key, rest
		}
		p.Line = cfg.Line(p.Path)
		if p.Line == 0 {
			p.Line = cfg.Line(path)
		}
		out = append(out, p)
	}
	return out
}

// configKey matches a key path as connectors name them in messages.
var configKey = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*|\[[0-9]+\])*$`)

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
