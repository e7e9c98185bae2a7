package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/jmlgate/jmlgate/connectors/webhook"
	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/auth"
	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/deliveryapi"
	"github.com/jmlgate/jmlgate/internal/events"
	"github.com/jmlgate/jmlgate/internal/httpapi"
	"github.com/jmlgate/jmlgate/internal/identityapi"
	"github.com/jmlgate/jmlgate/internal/secrets"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
	"github.com/jmlgate/jmlgate/scim"
	"github.com/jmlgate/jmlgate/workflows"
	"github.com/jmlgate/jmlgate/workflows/roles"
)

// App is one running gateway: store, HTTP server and their shutdown. The
// end-to-end tests drive it exactly as `jmlgate serve` does, on port 0 with a
// temporary database.
type App struct {
	Config *config.Config
	Logger *slog.Logger
	// Out receives the one-time bootstrap token banner.
	Out io.Writer
	Now func() time.Time

	store      store.Store
	ln         net.Listener
	srv        *http.Server
	engine     *workflows.Engine
	dispatcher *workflows.Dispatcher
}

// openStore opens (without migrating) the configured store.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	switch cfg.Store.Driver {
	case "sqlite":
		return sqlite.Open(ctx, cfg.Store.Path, sqlite.WithLogger(log))
	default:
		return nil, fmt.Errorf("store driver %q is not built yet; use sqlite", cfg.Store.Driver)
	}
}

// Open opens and migrates the store, creates the bootstrap token on a new
// install, and binds the listener. Nothing is served until Run.
func (a *App) Open(ctx context.Context) error {
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Out == nil {
		a.Out = os.Stdout
	}
	// Roles first: a bad rule stops start-up before anything is written.
	roleSet, err := roles.Compile(a.Config.Roles)
	if err != nil {
		return fmt.Errorf("roles: %w", err)
	}
	keys, err := webhookKeys(a.Config)
	if err != nil {
		return err
	}
	targets, err := openTargets(a.Config, keys, a.Logger)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := workflows.NewMetrics(reg)
	configured := map[string]bool{}
	for name := range targets {
		configured[name] = true
	}
	a.engine = &workflows.Engine{Roles: roleSet, Now: a.Now, Log: a.Logger, Connectors: configured,
		Revoked: metrics.ObserveTimeToRevoke}
	st, err := openStore(ctx, a.Config, a.Logger)
	if err != nil {
		closeTargets(targets)
		return err
	}
	a.store = st
	d := a.Config.Delivery
	a.dispatcher = &workflows.Dispatcher{
		Store: st, Engine: a.engine, Targets: targets, Now: a.Now, Log: a.Logger, Metrics: metrics,
		Poll: d.Poll.D(), BackoffBase: d.BackoffBase.D(), BackoffMax: d.BackoffMax.D(), OpTimeout: d.OpTimeout.D(),
		DrainTimeout: a.Config.Server.ShutdownTimeout.D(),
	}
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := a.bootstrap(ctx); err != nil {
		return err
	}
	keyFile := a.Config.Secrets.KeyFile
	if keyFile == "" {
		keyFile = filepath.Join(filepath.Dir(a.Config.Store.Path), "jmlgate.key")
	}
	vault, err := secrets.Open(keyFile)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	mfa := &workflows.MFA{Engine: a.engine, Store: st, Vault: vault}
	var mounts []httpapi.Mount
	if len(a.Config.MFA.EventIssuers) > 0 {
		recv := &events.Receiver{Store: st, Engine: a.engine, Issuers: a.Config.MFA.EventIssuers, Log: a.Logger}
		if err := recv.Init(); err != nil {
			return fmt.Errorf("mfa.event_issuers: %w", err)
		}
		// Security Event Tokens are authenticated by their signature.
		mounts = append(mounts, httpapi.Mount{Prefix: events.Path, Handler: recv.Handler(), Public: true})
	}
	authn, err := auth.New(a.Config.Auth, storeTokens{st}, a.Now)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if keys != nil {
		// Receivers verify webhook events against these keys.
		mounts = append(mounts, httpapi.Mount{Prefix: webhookJWKSPath, Handler: webhook.JWKSHandler(keys), Public: true})
	}
	deliveries := deliveryapi.Handler(a.dispatcher, st, a.Logger)
	names := make([]string, 0, len(targets))
	for name := range targets {
		names = append(names, name)
	}
	reg.MustRegister(deliveryapi.NewQueueCollector(st, names))
	rl := a.Config.Server.RateLimit
	rps := 0.0
	if rl.Enabled {
		rps = rl.RequestsPerSecond
	}
	h := httpapi.New(httpapi.Config{
		Auth: authn,
		SCIM: scim.NewServer(scim.Config{
			Store: st, BaseURL: a.Config.Server.BaseURL, MaxResults: a.Config.SCIM.MaxResults,
			MaxBodyBytes: a.Config.Server.BodyLimit, BulkMaxOperations: a.Config.SCIM.Bulk.MaxOperations,
			BulkMaxPayload: a.Config.SCIM.Bulk.MaxPayloadBytes, Now: a.Now, Logger: a.Logger,
			Lifecycle: a.engine,
		}),
		Mounts: append(mounts, []httpapi.Mount{
			{Prefix: "/api/v1/roles", Handler: roles.Handler(roleSet, a.Logger), Scopes: readScopes},
			{Prefix: "/api/v1/identities", Handler: identityapi.Handler(st, a.Logger), Scopes: readScopes},
			{Prefix: "/api/v1/identities/:id/mfa", Handler: identityapi.MFAHandler(mfa, a.Logger), Scopes: enrollScopes},
			{Prefix: "/api/v1/identities/:id/plan", Handler: deliveryapi.PlanHandler(a.dispatcher, st, a.Logger), Scopes: readScopes},
			{Prefix: deliveryapi.DeliveriesPrefix, Handler: deliveries, Scopes: []auth.Scope{auth.ScopeAdmin}},
			{Prefix: deliveryapi.ConnectorsPrefix, Handler: deliveries, Scopes: []auth.Scope{auth.ScopeAdmin}},
			{Prefix: identityapi.ApprovalsPrefix, Scopes: []auth.Scope{auth.ScopeApprove}, Handler: identityapi.ApprovalsHandler(st, a.engine, a.Logger)},
			{Prefix: identityapi.ExceptionsPrefix, Scopes: []auth.Scope{auth.ScopeApprove}, Handler: (&identityapi.Exceptions{
				Store: st, Engine: a.engine, Max: a.Config.MFA.ExceptionMax.D(), Log: a.Logger}).Handler()},
		}...),
		Ready:          st.Ready,
		Logger:         a.Logger,
		Registry:       reg,
		RateLimit:      rps,
		RateBurst:      rl.Burst,
		RequestTimeout: a.Config.Server.RequestTimeout.D(),
		BodyLimit:      a.Config.Server.BodyLimit,
	})
	a.ln, err = net.Listen("tcp", a.Config.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.Config.Server.Listen, err)
	}
	timeout := a.Config.Server.RequestTimeout.D()
	a.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       timeout,
		WriteTimeout:      timeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn),
	}
	return nil
}

// Addr is the bound listen address (useful with port 0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// Run serves until ctx is cancelled, then stops accepting, drains in-flight
// requests for at most the shutdown timeout, and returns.
func (a *App) Run(ctx context.Context) error {
	a.Logger.Info("jmlgate listening", "addr", a.Addr(), "store", a.Config.Store.Driver, "version", version)
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	// Time-driven lifecycle transitions: at once (catching up on whatever
	// fell due while the gateway was down), then every minute.
	sched, stopSched := context.WithCancel(context.WithoutCancel(ctx))
	schedDone := make(chan struct{})
	go func() { defer close(schedDone); a.engine.Run(sched, a.store, time.Minute) }()
	defer func() { stopSched(); <-schedDone }()
	// Deliveries: requeue what a crash left running, then fan out. On
	// shutdown in-flight deliveries get the shutdown timeout to finish.
	deliver, stopDeliver := context.WithCancel(context.WithoutCancel(ctx))
	deliverDone := make(chan error, 1)
	go func() { deliverDone <- a.dispatcher.Run(deliver) }()
	// Catch up with the configuration: everyone is re-evaluated when the
	// role rules changed, and anything a connector lacks (one added to the
	// config, say) is queued. In the background: live traffic goes on.
	resyncDone := make(chan struct{})
	go func() { defer close(resyncDone); a.resync(deliver) }()
	defer func() { stopDeliver(); <-resyncDone }()
	defer func() {
		stopDeliver()
		if err := <-deliverDone; err != nil {
			a.Logger.Error("deliveries stopped", "error", err)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.Logger.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), a.Config.Server.ShutdownTimeout.D())
	defer cancel()
	if err := a.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// resync runs the start-up catch-up (see Run); failures are logged, and
// the next start tries again.
func (a *App) resync(ctx context.Context) {
	if n, err := a.engine.SyncRoles(ctx, a.store, a.Config.Roles); err != nil {
		if ctx.Err() == nil {
			a.Logger.Error("roles changed: re-evaluation failed", "identities", n, "error", err)
		}
		return
	} else if n > 0 {
		a.Logger.Info("roles changed: identities re-evaluated", "identities", n)
	}
	if n, err := a.dispatcher.Resync(ctx); err != nil {
		if ctx.Err() == nil {
			a.Logger.Error("deliveries: resync failed", "error", err)
		}
	} else if n > 0 {
		a.Logger.Info("deliveries: queued what connectors lacked", "deliveries", n)
	}
}

// Close releases the store. Call after Run returns.
func (a *App) Close() error {
	if a.dispatcher != nil {
		closeTargets(a.dispatcher.Targets)
	}
	if a.store != nil {
		return a.store.Close()
	}
	return nil
}

// bootstrapTokenName names the credential a new install generates.
const bootstrapTokenName = "bootstrap-admin"

// bootstrap gives a new install its first credential (IA-5 (e): no default
// authenticator exists; this one is random, stored hashed and shown once).
// It does nothing when any token exists in the store or the config file.
func (a *App) bootstrap(ctx context.Context) error {
	if len(a.Config.Auth.Tokens) > 0 || a.Config.Auth.JWT != nil {
		return nil
	}
	var token string
	err := a.store.Update(ctx, func(tx store.Tx) error {
		ts, err := tx.Tokens(ctx)
		if err != nil || len(ts) > 0 {
			return err
		}
		var t *store.Token
		token, t, err = newStoreToken(bootstrapTokenName, allScopes(), time.Time{}, a.Now())
		if err != nil {
			return err
		}
		if err := tx.CreateToken(ctx, t); err != nil {
			return err
		}
		_, err = audit.Append(ctx, tx, a.Now(), audit.Entry{Actor: "system", Action: "token.create", ResourceType: "Token", ResourceID: t.Name})
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return nil // another replica bootstrapped first
	}
	if err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	if token != "" {
		fmt.Fprintf(a.Out, "\n%s\nNew install: generated the bootstrap admin token (scopes %s).\nIt is shown ONCE and stored only as a SHA-256 hash:\n\n    %s\n\nCreate scoped tokens with `jmlgate token create` and revoke this one with\n`jmlgate token revoke --name %s`.\n%s\n\n",
			strings.Repeat("=", 72), strings.Join(scopeNames(allScopes()), ","), token, bootstrapTokenName, strings.Repeat("=", 72))
	}
	return nil
}

// readScopes may read roles and identities: IT approvers, auditors and
// administrators.
var readScopes = []auth.Scope{auth.ScopeApprove, auth.ScopeAudit, auth.ScopeAdmin}

// enrollScopes may run MFA enrollment for a person (IT helpdesk, a
// self-service portal's credential).
var enrollScopes = []auth.Scope{auth.ScopeApprove, auth.ScopeAdmin}

func allScopes() []auth.Scope {
	return []auth.Scope{auth.ScopeSCIM, auth.ScopeApprove, auth.ScopeAudit, auth.ScopeAdmin}
}

func scopeNames(ss []auth.Scope) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// newStoreToken mints a token and the row that stores its hash.
func newStoreToken(name string, scopes []auth.Scope, expires, now time.Time) (string, *store.Token, error) {
	tok, hash, err := auth.NewToken()
	if err != nil {
		return "", nil, err
	}
	return tok, &store.Token{
		ID: randomID(), Name: name, Hash: hash, Scopes: scopeNames(scopes), Created: now.UTC(), Expires: expires,
	}, nil
}

// storeTokens adapts the store to auth.TokenSource.
type storeTokens struct{ s store.Store }

func (t storeTokens) TokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	var tok *store.Token
	err := t.s.View(ctx, func(tx store.ReadTx) error {
		var err error
		tok, err = tx.TokenByHash(ctx, hash)
		return err
	})
	return tok, err
}
