// Package postgres provisions people into a PostgreSQL cluster the way a
// DBA manages access: a person's account is a LOGIN role, an entitlement is
// membership in a group role the DBA created, a leaver's role loses LOGIN
// and their backends are terminated, and the passwords of shared roles are
// rotated as SCRAM-SHA-256 verifiers computed on the jmlgate side.
//
// # Roles
//
// EnsureAccount creates the role RoleName(role_prefix, userName) with LOGIN
// and no password, and comments it
//
//	jmlgate:<identity id>
//	userName=<userName>
//
// People then authenticate however the DBA set up pg_hba.conf for these
// roles (ldap, gss, cert, an IAM plugin): jmlgate decides whether a role
// may log in, never how. The comment is the ownership mark: the connector
// acts only on roles whose name starts with role_prefix and whose comment
// starts with "jmlgate:"; a role of the wanted name without it is the
// DBA's, and EnsureAccount answers Conflict rather than take it over. The
// ref of an account is its role name.
//
// # Entitlements
//
// An entitlement is the name of a group role, exactly as stored (case
// matters), granted with GRANT "group" TO "role". The group must exist.
// A member of a group can use (or SET ROLE to) the group and every role the
// group is a member of, recursively. Grant therefore refuses (Permanent),
// whatever allowed_groups says, a group from which, the group itself
// included, any of these is reachable through memberships (whatever their
// INHERIT and SET options): a superuser; a role with CREATEROLE,
// BYPASSRLS or REPLICATION; a role that can log in (a person's role,
// another jmlgate account, a service account, the connector's own role);
// the connector's own role (current_user). A predefined role (pg_*, such
// as pg_write_all_data or pg_execute_server_program) is refused, as the
// group or reachable from it, unless allowed_groups lists that very role:
// granting pg_monitor needs pg_monitor, pg_read_all_settings,
// pg_read_all_stats and pg_stat_scan_tables listed. And when allowed_groups
// is set, every group outside it is refused. Revoke takes any group away,
// listed or not, so a revocation is never blocked by a configuration
// change.
//
// # Safety of the SQL
//
// Values travel as bind parameters. The statements that take none (CREATE,
// ALTER, GRANT, REVOKE, COMMENT) quote role names as identifiers and string
// constants as E'…' literals; names and values with NUL bytes or invalid
// UTF-8 are refused before any SQL is built.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jmlgate/jmlgate/connectors"
)

// Conn is the PostgreSQL connector. It is safe for concurrent use.
type Conn struct {
	name    string
	log     *slog.Logger
	pool    *pgxpool.Pool
	prefix  string
	allowed map[string]bool
	shared  map[string]bool
	redact  *redactor
	// pageSize is how many roles ListAccounts reads per query.
	pageSize int
	// lockTimeout and statementTimeout are the settings (milliseconds)
	// every transaction starts with.
	lockTimeout, statementTimeout string
	// hosts, database and user describe the target for String and logs;
	// none of them is secret.
	hosts          []string
	database, user string
}

// String describes the connector by what is not secret: its name, role
// prefix, hosts, database and user; never the DSN or a password.
func (c *Conn) String() string {
	if c == nil {
		return "postgres connector <nil>"
	}
	return fmt.Sprintf("postgres connector %q (role_prefix %q, hosts %s, database %q, user %q)",
		c.name, c.prefix, strings.Join(c.hosts, ","), c.database, c.user)
}

// GoString is String, for %#v.
func (c *Conn) GoString() string { return c.String() }

// Format prints String whatever the verb and flags, so %v, %+v and %#v
// never walk the struct (its pool holds the parsed DSN).
func (c *Conn) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", c.String())
		return
	}
	fmt.Fprint(f, c.String())
}

// LogValue shows the connector in slog as a group of its non-secret
// attributes.
func (c *Conn) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(
		slog.String("type", "postgres"),
		slog.String("name", c.name),
		slog.String("role_prefix", c.prefix),
		slog.Any("hosts", c.hosts),
		slog.String("database", c.database),
		slog.String("user", c.user),
	)
}

var (
	_ fmt.Stringer              = (*Conn)(nil)
	_ fmt.Formatter             = (*Conn)(nil)
	_ slog.LogValuer            = (*Conn)(nil)
	_ connectors.Connector      = (*Conn)(nil)
	_ connectors.SessionRevoker = (*Conn)(nil)
	_ connectors.SecretRotator  = (*Conn)(nil)
	_ connectors.Lister         = (*Conn)(nil)
	_ connectors.Finder         = (*Conn)(nil)
)

// Close closes the connection pool, waiting for connections in use to be
// released.
func (c *Conn) Close() { c.pool.Close() }

// sharedDescription joins a role's comment; pg_shdescription is readable by
// every role, unlike pg_authid.
const sharedDescription = `pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass`

// role is what the connector reads about one role.
type role struct {
	name     string
	canLogin bool
	comment  string
}

func (r role) managed() bool { _, _, ok := parseComment(r.comment); return ok }

// lookup reads the role called name; found is false when there is none.
func lookup(ctx context.Context, tx pgx.Tx, name string) (r role, found bool, err error) {
	err = tx.QueryRow(ctx, `SELECT r.rolname, r.rolcanlogin, coalesce(pg_catalog.shobj_description(r.oid, 'pg_authid'), '')
		FROM pg_catalog.pg_roles r WHERE r.rolname = $1`, name).Scan(&r.name, &r.canLogin, &r.comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return role{}, false, nil
	}
	return r, err == nil, err
}

// maxAttempts bounds how often inTx runs a transaction that lost a race.
const maxAttempts = 3

// inTx runs fn in one transaction: its statements, DDL included, commit
// together or not at all. The transaction first sets lock_timeout and
// statement_timeout for itself (SET LOCAL semantics, so a pooling proxy
// between us and the server does not lose them), so that no statement
// waits on a lock or runs for ever. A transaction that lost a race with a
// concurrent one touching the same catalog row (see raced) runs again, up
// to three times in all: every fn reads the state afresh, so the second run
// finds what the winner did.
func (c *Conn) inTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	withTimeouts := func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_catalog.set_config('lock_timeout', $1, true),
				pg_catalog.set_config('statement_timeout', $2, true)`, c.lockTimeout, c.statementTimeout); err != nil {
			return err
		}
		return fn(tx)
	}
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, c.pool, withTimeouts)
		if err == nil {
			return nil
		}
		if raced(err) && attempt < maxAttempts && ctx.Err() == nil {
			continue
		}
		var ce *connectors.Error
		if errors.As(err, &ce) {
			return err // classified by fn
		}
		return c.fail(ctx, op, err)
	}
}

// raced reports whether err is a lost race with a concurrent transaction:
// CREATE ROLE of the same name (42710, or 23505 when both passed the
// existence check), GRANT of the same membership (23505), ALTER or COMMENT
// of the same role ("tuple concurrently updated", XX000), a serialization
// failure or a deadlock (40001, 40P01).
func raced(err error) bool {
	switch sqlState(err) {
	case codeDuplicateObject, codeUniqueViolation, codeInternal, "40001", "40P01":
		return true
	}
	return false
}

// checkRef rejects a ref that cannot name a role of this connector.
func (c *Conn) checkRef(ref string) error {
	if err := checkRoleName(ref); err != nil {
		return refuse("ref %q: %v", ref, err)
	}
	if !strings.HasPrefix(ref, c.prefix) {
		return refuse("ref %q is outside role_prefix %q: not a role this connector manages", ref, c.prefix)
	}
	return nil
}

// EnsureAccount makes sure a LOGIN role exists for a and returns its name.
// It looks first for the role carrying a's identity id in its comment
// (within role_prefix), so a person keeps their role across renames; then
// for RoleName(role_prefix, a.UserName). A found role gets LOGIN back and
// its comment's userName brought up to date; otherwise the role is created
// with LOGIN and the comment in one transaction, so no role of ours ever
// exists without its mark. A concurrent EnsureAccount creating or enabling
// the same role is not an error: the call looks again (see inTx) and
// returns the role.
//
// Errors: Conflict when the name is taken by a role without the jmlgate
// mark (the DBA's) or marked for another identity, or when several roles
// carry a's identity id; Permanent for an account without identity id or
// userName, or one that cannot be stored (invalid UTF-8, NUL); otherwise
// as fail classifies.
func (c *Conn) EnsureAccount(ctx context.Context, a connectors.Account) (string, error) {
	if err := checkAccount(a.IdentityID, a.UserName); err != nil {
		return "", refuse("EnsureAccount: %v", err)
	}
	want := comment(a.IdentityID, a.UserName)
	quotedComment, err := literal(want)
	if err != nil {
		return "", refuse("EnsureAccount: %v", err)
	}
	var (
		ref     string
		created bool
	)
	err = c.inTx(ctx, "EnsureAccount", func(tx pgx.Tx) error {
		ref, created = "", false
		r, found, err := c.locate(ctx, tx, a)
		if err != nil {
			return err
		}
		if !found {
			name := RoleName(c.prefix, a.UserName)
			if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(name)+" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "COMMENT ON ROLE "+ident(name)+" IS "+quotedComment); err != nil {
				return err
			}
			ref, created = name, true
			return nil
		}
		ref = r.name
		if !r.canLogin {
			if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(r.name)+" LOGIN"); err != nil {
				return err
			}
		}
		if r.comment != want {
			if _, err := tx.Exec(ctx, "COMMENT ON ROLE "+ident(r.name)+" IS "+quotedComment); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if created {
		c.log.Debug("postgres connector: role created", "connector", c.name, "role", ref)
	}
	return ref, nil
}

// locate finds a's role: the one carrying a's identity id, else the one
// named RoleName(prefix, userName) if it carries a's identity id too
// (a concurrent EnsureAccount may have committed it between the two
// statements, each of which sees the catalog as committed when it starts).
// A role of that name that is not a's is a Conflict.
func (c *Conn) locate(ctx context.Context, tx pgx.Tx, a connectors.Account) (role, bool, error) {
	r, found, refused, err := c.match(ctx, tx, a)
	if err == nil && refused != nil {
		return r, false, refused
	}
	return r, found, err
}

// match is locate, with the Conflict for a role of the derived name that
// is not a's returned as refused (found is then false) rather than as err,
// so that FindAccount can report it as not found.
func (c *Conn) match(ctx context.Context, tx pgx.Tx, a connectors.Account) (r role, found bool, refused, err error) {
	r, found, err = c.findByIdentity(ctx, tx, a.IdentityID)
	if err != nil || found {
		return r, found, nil, err
	}
	name := RoleName(c.prefix, a.UserName)
	if r, found, err = lookup(ctx, tx, name); err != nil || !found {
		return r, found, nil, err
	}
	switch id, _, managed := parseComment(r.comment); {
	case !managed:
		return r, false, connectors.Errorf(connectors.Conflict, "postgres: role %q exists and is not managed by jmlgate (no jmlgate comment); rename or drop it, or mark it for this identity by hand", name), nil
	case id != a.IdentityID:
		return r, false, connectors.Errorf(connectors.Conflict, "postgres: role %q belongs to jmlgate identity %q, not %q", name, id, a.IdentityID), nil
	}
	return r, true, nil, nil
}

// FindAccount returns the name of a's role, found as EnsureAccount finds
// it: the role within role_prefix carrying a's identity id, else
// RoleName(role_prefix, a.UserName) if it carries a's identity id. It runs
// in one READ ONLY transaction: no role is created, enabled or commented.
// found is false, with a nil error, when there is no such role, including
// when the derived name belongs to a role without the jmlgate mark (the
// DBA's) or marked for another identity.
//
// Errors: Conflict when several roles carry a's identity id; Permanent for
// an account without identity id or userName, or one that cannot be stored
// (invalid UTF-8, NUL); otherwise as fail classifies.
func (c *Conn) FindAccount(ctx context.Context, a connectors.Account) (ref string, found bool, err error) {
	if err := checkAccount(a.IdentityID, a.UserName); err != nil {
		return "", false, refuse("FindAccount: %v", err)
	}
	err = c.inTx(ctx, "FindAccount", func(tx pgx.Tx) error {
		ref, found = "", false
		if _, err := tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
			return err
		}
		r, ok, refused, err := c.match(ctx, tx, a)
		if err != nil || refused != nil || !ok {
			return err
		}
		ref, found = r.name, true
		return nil
	})
	if err != nil {
		return "", false, err
	}
	return ref, found, nil
}

// findByIdentity returns the managed role whose comment carries id.
func (c *Conn) findByIdentity(ctx context.Context, tx pgx.Tx, id string) (role, bool, error) {
	rows, err := tx.Query(ctx, `SELECT r.rolname, r.rolcanlogin, d.description
		FROM pg_catalog.pg_roles r JOIN `+sharedDescription+`
		WHERE starts_with(r.rolname, $1) AND split_part(d.description, E'\n', 1) = $2`,
		c.prefix, commentMarker+id)
	if err != nil {
		return role{}, false, err
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (role, error) {
		var r role
		err := row.Scan(&r.name, &r.canLogin, &r.comment)
		return r, err
	})
	switch {
	case err != nil:
		return role{}, false, err
	case len(found) == 0:
		return role{}, false, nil
	case len(found) > 1:
		names := make([]string, len(found))
		for i, r := range found {
			names[i] = r.name
		}
		slices.Sort(names)
		return role{}, false, connectors.Errorf(connectors.Conflict, "postgres: roles %q all carry jmlgate identity %q; keep one", names, id)
	}
	return found[0], true, nil
}

// managedRole reads ref and checks it is ours. found is false when the role
// does not exist; a role without the jmlgate mark is a Conflict.
func (c *Conn) managedRole(ctx context.Context, tx pgx.Tx, op, ref string) (role, bool, error) {
	r, found, err := lookup(ctx, tx, ref)
	if err != nil || !found {
		return r, found, err
	}
	if !r.managed() {
		return r, true, connectors.Errorf(connectors.Conflict, "postgres %s: role %q is not managed by jmlgate (no jmlgate comment); refusing to touch it", op, ref)
	}
	return r, true, nil
}

// DisableAccount removes LOGIN from the role (ALTER ROLE … NOLOGIN). Its
// live sessions continue until RevokeSessions. Idempotent; a role that does
// not exist is already disabled (nil).
//
// Errors: Permanent for a ref outside role_prefix; Conflict for a role
// without the jmlgate mark; otherwise as fail classifies.
func (c *Conn) DisableAccount(ctx context.Context, ref string) error {
	if err := c.checkRef(ref); err != nil {
		return err
	}
	err := c.inTx(ctx, "DisableAccount", func(tx pgx.Tx) error {
		r, found, err := c.managedRole(ctx, tx, "DisableAccount", ref)
		if err != nil || !found || !r.canLogin {
			return err
		}
		_, err = tx.Exec(ctx, "ALTER ROLE "+ident(ref)+" NOLOGIN")
		if err == nil {
			c.log.Debug("postgres connector: role disabled", "connector", c.name, "role", ref)
		}
		return err
	})
	if sqlState(err) == codeUndefinedObject && ctx.Err() == nil {
		return nil // dropped since we looked: disabled
	}
	return err
}

// Grant makes the role a member of the group role entitlement. Granting a
// membership the role has is nil. The checks and the GRANT run in one
// transaction.
//
// Errors: NotFound when the role does not exist (a stale ref); Conflict for
// a role without the jmlgate mark; Permanent when the group does not exist,
// is not allowed or leads to a privilege it must not hand out (see the
// package documentation; the message names every reason), and when the
// connector's role may not grant it (42501); otherwise as fail classifies.
func (c *Conn) Grant(ctx context.Context, ref, entitlement string) error {
	if err := c.checkRef(ref); err != nil {
		return err
	}
	if err := checkRoleName(entitlement); err != nil {
		return refuse("Grant: entitlement %q: %v", entitlement, err)
	}
	if len(c.allowed) > 0 && !c.allowed[entitlement] {
		return refuse("Grant: group %q is not in allowed_groups", entitlement)
	}
	if strings.HasPrefix(entitlement, "pg_") && !c.allowed[entitlement] {
		return refuse("Grant: %q is a PostgreSQL predefined role; it is granted only when allowed_groups lists it", entitlement)
	}
	return c.inTx(ctx, "Grant", func(tx pgx.Tx) error {
		_, found, err := c.managedRole(ctx, tx, "Grant", ref)
		if err != nil {
			return err
		}
		if !found {
			return connectors.Errorf(connectors.NotFound, "postgres Grant: role %q does not exist", ref)
		}
		reached, err := reachable(ctx, tx, entitlement)
		if err != nil {
			return err
		}
		if err := c.grantable(entitlement, reached); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "GRANT "+ident(entitlement)+" TO "+ident(ref)); err != nil {
			return err
		}
		return nil
	})
}

// Revoke ends the role's membership in the group role entitlement, granted
// by whichever role. Revoking a membership the role does not have, from a
// role or of a group that does not exist, is nil. allowed_groups is not
// consulted: taking access away is always allowed.
//
// Errors: Permanent for a ref outside role_prefix, when the connector's
// role may not revoke it (42501), or when the membership survives the
// REVOKE (PostgreSQL 16 keeps memberships granted by another role); Conflict
// for a role without the jmlgate mark; otherwise as fail classifies.
func (c *Conn) Revoke(ctx context.Context, ref, entitlement string) error {
	if err := c.checkRef(ref); err != nil {
		return err
	}
	if err := checkRoleName(entitlement); err != nil {
		return refuse("Revoke: entitlement %q: %v", entitlement, err)
	}
	err := c.inTx(ctx, "Revoke", func(tx pgx.Tx) error {
		_, found, err := c.managedRole(ctx, tx, "Revoke", ref)
		if err != nil || !found {
			return err
		}
		member, err := isMember(ctx, tx, ref, entitlement)
		if err != nil || !member {
			return err
		}
		if _, err := tx.Exec(ctx, "REVOKE "+ident(entitlement)+" FROM "+ident(ref)); err != nil {
			return err
		}
		if member, err = isMember(ctx, tx, ref, entitlement); err != nil {
			return err
		}
		if member {
			return refuse("Revoke: role %q is still a member of %q after REVOKE (granted by another role?); revoke it by hand", ref, entitlement)
		}
		return nil
	})
	if sqlState(err) == codeUndefinedObject && ctx.Err() == nil {
		return nil // the role or the group was dropped since we looked
	}
	return err
}

// reachedRole is a role whose privileges a member of a group can use (or
// SET ROLE to): the group itself or one it is a member of, recursively.
type reachedRole struct {
	name                                      string
	root                                      bool // the group itself
	super, createRole, bypassRLS, replication bool
	login, self, account                      bool
}

// reachable returns group and every role reachable from it through
// memberships, whatever their INHERIT and SET options (a conservative
// reading: an option can be changed later without jmlgate noticing). It is
// empty when group does not exist.
func reachable(ctx context.Context, tx pgx.Tx, group string) ([]reachedRole, error) {
	rows, err := tx.Query(ctx, `WITH RECURSIVE up(oid) AS (
			SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1
			UNION
			SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN up ON m.member = up.oid
		)
		SELECT r.rolname::text, r.rolname = $1, r.rolsuper, r.rolcreaterole, r.rolbypassrls, r.rolreplication,
			r.rolcanlogin, r.rolname = current_user,
			coalesce(starts_with(pg_catalog.shobj_description(r.oid, 'pg_authid'), $2), false)
		FROM up JOIN pg_catalog.pg_roles r ON r.oid = up.oid
		ORDER BY r.rolname = $1 DESC, r.rolname`, group, commentMarker)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (reachedRole, error) {
		var r reachedRole
		err := row.Scan(&r.name, &r.root, &r.super, &r.createRole, &r.bypassRLS, &r.replication, &r.login, &r.self, &r.account)
		return r, err
	})
}

// grantable decides, from what reachable found, whether Grant may make an
// account a member of group: a Permanent error naming every reason when
// not.
func (c *Conn) grantable(group string, reached []reachedRole) error {
	if len(reached) == 0 {
		return refuse("Grant: group role %q does not exist (the DBA creates group roles)", group)
	}
	if reached[0].account {
		return refuse("Grant: %q is a jmlgate account, not a group role", group)
	}
	var why []string
	for _, r := range reached {
		who := fmt.Sprintf("it leads to %q, which", r.name)
		if r.root {
			who = "it"
		}
		var is []string
		for _, f := range []struct {
			on   bool
			what string
		}{
			{r.self, "is the connector's own role"},
			{r.super, "is a superuser"},
			{r.createRole, "has CREATEROLE"},
			{r.bypassRLS, "has BYPASSRLS"},
			{r.replication, "has REPLICATION"},
			{r.login, "can log in (a person's or a service's role)"},
			{strings.HasPrefix(r.name, "pg_") && !c.allowed[r.name], "is a PostgreSQL predefined role that allowed_groups does not list"},
		} {
			if f.on {
				is = append(is, f.what)
			}
		}
		if len(is) > 0 {
			why = append(why, who+" "+strings.Join(is, " and "))
		}
	}
	if len(why) > 0 {
		return refuse("Grant: group role %q is refused: %s", group, strings.Join(why, "; "))
	}
	return nil
}

// isMember reports whether role is a direct member of group.
func isMember(ctx context.Context, tx pgx.Tx, role, group string) (bool, error) {
	var member bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_auth_members m
		JOIN pg_catalog.pg_roles u ON u.oid = m.member
		JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
		WHERE u.rolname = $1 AND g.rolname = $2)`, role, group).Scan(&member)
	return member, err
}

// terminateWait is how long pg_terminate_backend waits for each backend to
// exit, in milliseconds, so that RevokeSessions returns once the sessions
// are gone rather than merely signalled.
const terminateWait = 5000

// RevokeSessions terminates every backend of the role
// (pg_terminate_backend over pg_stat_activity) and waits for each to exit.
// A role with no sessions, or no role at all, is nil. It does not stop new
// logins: call DisableAccount first.
//
// Errors: Permanent for a ref outside role_prefix, and when the connector's
// role may not signal the backends (it needs pg_signal_backend); Conflict
// for a role without the jmlgate mark; Retryable when a backend did not
// exit within 5 s, or when statement_timeout ended the wait (57014);
// otherwise as fail classifies.
func (c *Conn) RevokeSessions(ctx context.Context, ref string) error {
	if err := c.checkRef(ref); err != nil {
		return err
	}
	return c.inTx(ctx, "RevokeSessions", func(tx pgx.Tx) error {
		if _, _, err := c.managedRole(ctx, tx, "RevokeSessions", ref); err != nil {
			return err
		}
		var total, gone int
		err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE t)
			FROM (SELECT pg_catalog.pg_terminate_backend(pid, $2) AS t
				FROM pg_catalog.pg_stat_activity
				WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()) s`,
			ref, int64(terminateWait)).Scan(&total, &gone)
		if err != nil {
			return err
		}
		if gone < total {
			return connectors.Errorf(connectors.Retryable, "postgres RevokeSessions: %d of %d sessions of %q did not end in time", total-gone, total, ref)
		}
		if total > 0 {
			c.log.Debug("postgres connector: sessions terminated", "connector", c.name, "role", ref, "sessions", total)
		}
		return nil
	})
}

// RotateSecret sets the password of the shared role account to secret. The
// SCRAM-SHA-256 verifier (random 16-byte salt, 4096 iterations) is computed
// here and sent as ALTER ROLE … PASSWORD '<verifier>': the clear secret
// never reaches the server, its statement log or pg_stat_activity. secret
// is not kept. Calling it twice with the same secret leaves a working
// password either way (the salt differs).
//
// Errors: Permanent when account is not in shared_accounts, or secret is
// empty, longer than 1024 bytes or not printable ASCII (see checkSecret);
// NotFound when the role does not exist; otherwise as fail classifies.
func (c *Conn) RotateSecret(ctx context.Context, account string, secret []byte) error {
	if !c.shared[account] {
		return refuse("RotateSecret: %q is not in shared_accounts", account)
	}
	if err := checkSecret(secret); err != nil {
		return refuse("RotateSecret %q: %v", account, err)
	}
	verifier, err := newScramVerifier(secret)
	if err != nil {
		return refuse("RotateSecret %q: computing the SCRAM verifier: %v", account, err)
	}
	quoted, err := literal(verifier)
	if err != nil {
		return refuse("RotateSecret %q: %v", account, err)
	}
	return c.inTx(ctx, "RotateSecret", func(tx pgx.Tx) error {
		if _, found, err := lookup(ctx, tx, account); err != nil || !found {
			if err == nil {
				err = connectors.Errorf(connectors.NotFound, "postgres RotateSecret: role %q does not exist", account)
			}
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(account)+" PASSWORD "+quoted); err != nil {
			// The statement holds the verifier: report the server's
			// error, never the statement.
			return fmt.Errorf("ALTER ROLE %s PASSWORD: %w", ident(account), err)
		}
		c.log.Debug("postgres connector: shared password rotated", "connector", c.name, "role", account)
		return nil
	})
}

// listPage is the default page size of ListAccounts.
const listPage = 500

// ListAccounts returns every role the connector manages (name starting with
// role_prefix, jmlgate comment), enabled when it has LOGIN, with all its
// direct group memberships sorted, whoever granted them: reconciliation
// needs to see access jmlgate did not grant. It pages by role name; each
// page is a consistent snapshot, the whole list is not.
func (c *Conn) ListAccounts(ctx context.Context) ([]connectors.AccountState, error) {
	var out []connectors.AccountState
	after := ""
	for {
		var page []connectors.AccountState
		err := c.inTx(ctx, "ListAccounts", func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT r.rolname::text, r.rolcanlogin, d.description,
					coalesce((SELECT array_agg(g.rolname::text) FROM pg_catalog.pg_auth_members m
						JOIN pg_catalog.pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '{}')
				FROM pg_catalog.pg_roles r JOIN `+sharedDescription+`
				WHERE starts_with(r.rolname, $1) AND starts_with(d.description, $2) AND r.rolname > $3::name
				ORDER BY r.rolname
				LIMIT $4`, c.prefix, commentMarker, after, c.pageSize)
			if err != nil {
				return err
			}
			page, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (connectors.AccountState, error) {
				var (
					st      connectors.AccountState
					comment string
				)
				if err := row.Scan(&st.Ref, &st.Enabled, &comment, &st.Entitlements); err != nil {
					return st, err
				}
				st.IdentityID, st.UserName, _ = parseComment(comment)
				slices.Sort(st.Entitlements)
				return st, nil
			})
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < c.pageSize {
			return out, nil
		}
		after = page[len(page)-1].Ref
	}
}
