// Command jmlgate is the joiner-mover-leaver provisioning gateway. main only
// wires: flags and config in, App out (see app.go).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/auth"
	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "jmlgate:", err)
		os.Exit(1)
	}
}

// flags are the overrides every store-using command accepts.
type flags struct {
	config string
	db     string
	listen string
}

func (f *flags) load() (*config.Config, error) {
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	if f.db != "" {
		cfg.Store.Path = f.db
	}
	if f.listen != "" {
		cfg.Server.Listen = f.listen
	}
	return cfg, nil
}

func (f *flags) bind(c *cobra.Command, listen bool) {
	c.Flags().StringVar(&f.config, "config", "", "YAML config file (default: built-in defaults)")
	c.Flags().StringVar(&f.db, "db", "", "SQLite database file (overrides store.path)")
	if listen {
		c.Flags().StringVar(&f.listen, "listen", "", "listen address host:port (overrides server.listen)")
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "jmlgate",
		Short:         "Joiner-mover-leaver provisioning gateway",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serveCmd(stdout, stderr), migrateCmd(stdout), tokenCmd(stdout), auditCmd(stdout), versionCmd(stdout))
	return root
}

func serveCmd(stdout, stderr io.Writer) *cobra.Command {
	var f flags
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway (migrates the store first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load()
			if err != nil {
				return err
			}
			app := &App{Config: cfg, Logger: newLogger(cfg, stderr), Out: stdout}
			defer app.Close()
			if err := app.Open(cmd.Context()); err != nil {
				return err
			}
			return app.Run(cmd.Context())
		},
	}
	f.bind(c, true)
	return c
}

// withStore loads config and runs fn on the migrated store.
func withStore(ctx context.Context, f *flags, fn func(store.Store) error) error {
	cfg, err := f.load()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return fn(st)
}

func migrateCmd(stdout io.Writer) *cobra.Command {
	var f flags
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending store migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), &f, func(store.Store) error {
				fmt.Fprintln(stdout, "migrations applied")
				return nil
			})
		},
	}
	f.bind(c, false)
	return c
}

// cliActor names the operator in audit records of CLI actions.
func cliActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// parseExpiry accepts a duration from now ("720h") or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--expires %q: must be in the future", s)
		}
		return now.Add(d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: want a duration such as 720h or an RFC 3339 time", s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("--expires %q: must be in the future", s)
	}
	return t.UTC(), nil
}

func tokenCmd(stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Manage API bearer tokens"}

	var cf flags
	var name, scopes, expires string
	var configLine bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a token; it is printed once and only its SHA-256 is kept",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(name) == "" {
				return errors.New("--name is required")
			}
			sc, err := auth.ParseScopes(splitComma(scopes))
			if err != nil {
				return err
			}
			if len(sc) == 0 {
				return errors.New("--scopes is required (scim, approve, audit, admin)")
			}
			now := time.Now()
			exp, err := parseExpiry(expires, now)
			if err != nil {
				return err
			}
			tok, t, err := newStoreToken(name, sc, exp, now)
			if err != nil {
				return err
			}
			if configLine {
				fmt.Fprintf(stdout, "token: %s\n\n# add under auth.tokens in the config file:\n- name: %s\n  sha256: %s\n  scopes: [%s]\n",
					tok, name, hex.EncodeToString(t.Hash), strings.Join(t.Scopes, ", "))
				if !exp.IsZero() {
					fmt.Fprintf(stdout, "  expires: %s\n", exp.Format(time.RFC3339))
				}
				return nil
			}
			err = tokenChange(cmd.Context(), &cf, "token.create", name, now, func(tx store.Tx) error {
				if err := tx.CreateToken(cmd.Context(), t); err != nil {
					if errors.Is(err, store.ErrConflict) {
						return fmt.Errorf("a token named %q already exists", name)
					}
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n# token %q (scopes %s) — shown once; only its SHA-256 is stored\n", tok, name, strings.Join(t.Scopes, ","))
			return nil
		},
	}
	cf.bind(create, false)
	create.Flags().StringVar(&name, "name", "", "token name, e.g. workday (required, unique)")
	create.Flags().StringVar(&scopes, "scopes", "", "comma-separated scopes: scim, approve, audit, admin")
	create.Flags().StringVar(&expires, "expires", "", "expiry as a duration (720h) or RFC 3339 time; default never")
	create.Flags().BoolVar(&configLine, "config-line", false, "print a config-file entry instead of storing the token")

	var lf flags
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (names, scopes, dates; never values or hashes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), &lf, func(st store.Store) error {
				return st.View(cmd.Context(), func(tx store.ReadTx) error {
					ts, err := tx.Tokens(cmd.Context())
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "NAME\tSCOPES\tCREATED\tEXPIRES\tSTATUS")
					now := time.Now()
					for _, t := range ts {
						status := "active"
						switch {
						case !t.Revoked.IsZero():
							status = "revoked " + t.Revoked.Format(time.RFC3339)
						case !t.Expires.IsZero() && !now.Before(t.Expires):
							status = "expired"
						}
						exp := "never"
						if !t.Expires.IsZero() {
							exp = t.Expires.Format(time.RFC3339)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, strings.Join(t.Scopes, ","), t.Created.Format(time.RFC3339), exp, status)
					}
					return tw.Flush()
				})
			})
		},
	}
	lf.bind(list, false)

	var rf flags
	var rname string
	revoke := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke a token by name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rname == "" {
				return errors.New("--name is required")
			}
			now := time.Now()
			err := tokenChange(cmd.Context(), &rf, "token.revoke", rname, now, func(tx store.Tx) error {
				if err := tx.RevokeToken(cmd.Context(), rname, now); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("no live token named %q", rname)
					}
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "token %q revoked\n", rname)
			return nil
		},
	}
	rf.bind(revoke, false)
	revoke.Flags().StringVar(&rname, "name", "", "name of the token to revoke")

	c.AddCommand(create, list, revoke)
	return c
}

// tokenChange runs change and its audit record (action on the named token,
// by the operator) in one transaction.
func tokenChange(ctx context.Context, f *flags, action, name string, now time.Time, change func(store.Tx) error) error {
	return withStore(ctx, f, func(st store.Store) error {
		return st.Update(ctx, func(tx store.Tx) error {
			if err := change(tx); err != nil {
				return err
			}
			_, err := audit.Append(ctx, tx, now, audit.Entry{Actor: cliActor(), Action: action, ResourceType: "Token", ResourceID: name})
			return err
		})
	})
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func auditCmd(stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Inspect the tamper-evident history"}
	var f flags
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the hash chain and report the first edited, deleted, reordered or inserted record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), &f, func(st store.Store) error {
				n, err := audit.VerifyStore(cmd.Context(), st)
				if err != nil {
					return fmt.Errorf("%w (after %d good records)", err, n)
				}
				fmt.Fprintf(stdout, "audit chain OK: %d records verified\n", n)
				return nil
			})
		},
	}
	f.bind(verify, false)
	c.AddCommand(verify)
	return c
}

func versionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(stdout, "jmlgate", version) },
	}
}
