package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/connectors/connectortest"
)

func TestConformance(t *testing.T) {
	testDSN(t)
	connectortest.Run(t, func(t *testing.T) connectortest.Target {
		e := newEnv(t)
		c, p := e.open(t, nil)
		return connectortest.Target{
			Conn:         c,
			Inspect:      inspect,
			Entitlements: e.groups,
			MissingRef:   e.prefix + "never_created",
			Hang:         p.hang,
		}
	})
}

func account(id int, userName string) connectors.Account {
	return connectors.Account{
		IdentityID: fmt.Sprintf("00000000-0000-4000-8000-%012d", id),
		UserName:   userName,
	}
}

func wantClass(t *testing.T, what string, err error, want connectors.Class) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: nil error, want %v", what, want)
		return
	}
	if got, _ := connectors.ClassOf(err); got != want {
		t.Errorf("%s: class %v (%v), want %v", what, got, err, want)
	}
}

var plainRoleName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// TestHostileUserNames feeds userNames built to break quoting through the
// whole life of an account, and checks each lands in its own role, stored
// exactly, while the cluster's superuser is untouched.
func TestHostileUserNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, nil)
	long := strings.Repeat("x", 200)
	names := []string{
		`o'brien@example.com`,
		`a;b`,
		`"; DROP ROLE postgres; --`,
		`'; DROP ROLE postgres; --`,
		`'); DROP ROLE postgres; --`,
		`back\slash\'quote\`,
		`E'\x27'`,
		`$$; DROP ROLE postgres; $$`,
		`multi` + "\n" + `line` + "\r\n" + `userName=evil`,
		`jmlgate:00000000-0000-4000-8000-000000000001`,
		`Zoë.Ångström@exämple.com`,
		`日本語ユーザー`,
		`🔥🔥🔥`,
		`ALICE`,
		`alice_`,
		long,
		long + "y",
		strings.Repeat("é", 100),
		`a.b`,
		`a_b`,
	}
	ctx := tctx(t)
	refs := map[string]string{}
	for i, u := range names {
		a := account(i+1, u)
		ref, err := c.EnsureAccount(ctx, a)
		if err != nil {
			t.Errorf("EnsureAccount(%q): %v", u, err)
			continue
		}
		if other, dup := refs[ref]; dup {
			t.Errorf("%q and %q share role %q", u, other, ref)
		}
		refs[ref] = u
		if !plainRoleName.MatchString(strings.TrimPrefix(ref, e.prefix)) || len(ref) > 63 || !strings.HasPrefix(ref, e.prefix) {
			t.Errorf("userName %q: role %q is not prefix + [a-z0-9_] within 63 bytes", u, ref)
		}
		if ref != RoleName(e.prefix, u) {
			t.Errorf("userName %q: role %q, RoleName says %q", u, ref, RoleName(e.prefix, u))
		}
		st, found := inspect(t, ref)
		if !found || !st.Enabled || st.UserName != u || st.IdentityID != a.IdentityID {
			t.Errorf("userName %q: stored %+v (found %v), want enabled with the exact userName and id", u, st, found)
		}
		if again, err := c.EnsureAccount(ctx, a); err != nil || again != ref {
			t.Errorf("EnsureAccount(%q) again = %q, %v; want %q", u, again, err, ref)
		}
		if err := c.Grant(ctx, ref, e.groups[0]); err != nil {
			t.Errorf("Grant to %q: %v", ref, err)
		}
	}
	list, err := c.ListAccounts(ctx)
	if err != nil {
		t.Fatalf("ListAccounts: %v", err)
	}
	listed := map[string]connectors.AccountState{}
	for _, st := range list {
		listed[st.Ref] = st
	}
	for ref, u := range refs {
		if st := listed[ref]; st.UserName != u || !slices.Equal(st.Entitlements, e.groups[:1]) {
			t.Errorf("listed %q = %+v, want userName %q with %q", ref, st, u, e.groups[:1])
		}
	}
	if len(list) != len(refs) {
		t.Errorf("ListAccounts returned %d roles, want %d", len(list), len(refs))
	}
	var super bool
	if err := adminPool(t).QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'`).Scan(&super); err != nil || !super {
		t.Fatalf("role postgres: superuser=%v err=%v", super, err)
	}
}

// TestHostileEntitlementsAndRefs sends quoting attacks in the places that
// are not userNames: they must fail cleanly, never run.
func TestHostileEntitlementsAndRefs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, nil)
	ctx := tctx(t)
	ref, err := c.EnsureAccount(ctx, account(1, "victim"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		call func() error
		want connectors.Class
	}{
		{"grant quoted group", func() error { return c.Grant(ctx, ref, `x"; DROP ROLE postgres; --`) }, connectors.Permanent},
		{"grant NUL group", func() error { return c.Grant(ctx, ref, e.groups[0]+"\x00") }, connectors.Permanent},
		{"grant 64-byte group", func() error { return c.Grant(ctx, ref, strings.Repeat("g", 64)) }, connectors.Permanent},
		{"grant invalid UTF-8", func() error { return c.Grant(ctx, ref, "g\xff") }, connectors.Permanent},
		{"grant to quoted ref", func() error { return c.Grant(ctx, e.prefix+`"; DROP ROLE postgres; --`, e.groups[0]) }, connectors.NotFound},
		{"revoke from postgres", func() error { return c.Revoke(ctx, "postgres", e.groups[0]) }, connectors.Permanent},
		{"disable postgres", func() error { return c.DisableAccount(ctx, "postgres") }, connectors.Permanent},
		{"sessions of postgres", func() error { return c.RevokeSessions(ctx, "postgres") }, connectors.Permanent},
		{"no identity id", func() error { _, err := c.EnsureAccount(ctx, connectors.Account{UserName: "x"}); return err }, connectors.Permanent},
		{"identity id with newline", func() error {
			_, err := c.EnsureAccount(ctx, connectors.Account{IdentityID: "id\njmlgate:other", UserName: "z"})
			return err
		}, connectors.Permanent},
		{"NUL userName", func() error { _, err := c.EnsureAccount(ctx, account(3, "a\x00b")); return err }, connectors.Permanent},
		{"invalid UTF-8 userName", func() error { _, err := c.EnsureAccount(ctx, account(4, "a\xffb")); return err }, connectors.Permanent},
		{"empty userName", func() error { _, err := c.EnsureAccount(ctx, account(5, "")); return err }, connectors.Permanent},
	}
	for _, tc := range cases {
		wantClass(t, tc.name, tc.call(), tc.want)
	}
	if st, _ := inspect(t, ref); len(st.Entitlements) != 0 || !st.Enabled {
		t.Errorf("victim changed: %+v", st)
	}
	var super, login bool
	if err := adminPool(t).QueryRow(ctx, `SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = 'postgres'`).Scan(&super, &login); err != nil || !super || !login {
		t.Fatalf("role postgres: superuser=%v login=%v err=%v", super, login, err)
	}
}

// TestUnmanagedRoleConflict: a role of the wanted name that the DBA made
// (no jmlgate comment), or one marked for another identity, is never taken
// over nor changed.
func TestUnmanagedRoleConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, nil)
	ctx := tctx(t)
	dba := RoleName(e.prefix, "dba.owned@example.com")
	adminExec(t, "CREATE ROLE "+ident(dba)+" NOLOGIN")
	other := RoleName(e.prefix, "someone")
	adminExec(t, "CREATE ROLE "+ident(other)+" LOGIN")
	adminExec(t, "COMMENT ON ROLE "+ident(other)+" IS 'jmlgate:another-identity'")

	_, err := c.EnsureAccount(ctx, account(1, "dba.owned@example.com"))
	wantClass(t, "EnsureAccount over the DBA's role", err, connectors.Conflict)
	_, err = c.EnsureAccount(ctx, account(2, "someone"))
	wantClass(t, "EnsureAccount over another identity's role", err, connectors.Conflict)

	wantClass(t, "DisableAccount", c.DisableAccount(ctx, dba), connectors.Conflict)
	wantClass(t, "Grant", c.Grant(ctx, dba, e.groups[0]), connectors.Conflict)
	wantClass(t, "Revoke", c.Revoke(ctx, dba, e.groups[0]), connectors.Conflict)
	wantClass(t, "RevokeSessions", c.RevokeSessions(ctx, dba), connectors.Conflict)

	if st, _ := inspect(t, dba); st.Enabled || len(st.Entitlements) != 0 || roleComment(t, dba) != "" {
		t.Errorf("DBA's role changed: %+v comment %q", st, roleComment(t, dba))
	}
	if got := roleComment(t, other); got != "jmlgate:another-identity" {
		t.Errorf("other identity's comment became %q", got)
	}
	list, err := c.ListAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Ref != other || list[0].IdentityID != "another-identity" || list[0].UserName != "" || !list[0].Enabled {
		t.Errorf("ListAccounts = %+v, want only %s (the DBA's role is not ours)", list, other)
	}
}

// TestRenameKeepsRole: EnsureAccount finds a person by identity id after
// their userName changed, keeps the role and records the new userName.
func TestRenameKeepsRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, nil)
	ctx := tctx(t)
	ref, err := c.EnsureAccount(ctx, account(1, "jdoe@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.DisableAccount(ctx, ref))
	again, err := c.EnsureAccount(ctx, account(1, "jane.smith@example.com"))
	if err != nil || again != ref {
		t.Fatalf("EnsureAccount after rename = %q, %v; want the existing %q", again, err, ref)
	}
	if st, _ := inspect(t, ref); !st.Enabled || st.UserName != "jane.smith@example.com" {
		t.Errorf("after rename: %+v", st)
	}
	if _, found := inspect(t, RoleName(e.prefix, "jane.smith@example.com")); found {
		t.Error("a second role was created for the renamed person")
	}
	// Another connector (another prefix) on the same cluster does not see
	// this identity: its namespace is its own.
	e2 := newEnv(t)
	c2, _ := e2.open(t, nil)
	ref2, err := c2.EnsureAccount(ctx, account(1, "jane.smith@example.com"))
	if err != nil || !strings.HasPrefix(ref2, e2.prefix) {
		t.Errorf("second namespace: %q, %v", ref2, err)
	}
	// A duplicated mark (a DBA copied the comment) is a conflict, not a
	// guess.
	dup := e.prefix + "copy"
	adminExec(t, "CREATE ROLE "+ident(dup)+" LOGIN")
	adminExec(t, "COMMENT ON ROLE "+ident(dup)+" IS "+mustLiteral(t, roleComment(t, ref)))
	_, err = c.EnsureAccount(ctx, account(1, "jane.smith@example.com"))
	wantClass(t, "EnsureAccount with two marked roles", err, connectors.Conflict)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustLiteral(t *testing.T, s string) string {
	t.Helper()
	l, err := literal(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestEnsureRace: many EnsureAccount calls for one person at once all
// return the one role (the losers of CREATE ROLE look again).
func TestEnsureRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, func(c *Config) { c.MaxConns = 8 })
	ctx := tctx(t)
	const n = 8
	refs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { refs[i], errs[i] = c.EnsureAccount(ctx, account(7, "race@example.com")) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || refs[i] != refs[0] {
			t.Errorf("call %d: %q, %v; want %q", i, refs[i], errs[i], refs[0])
		}
	}
}

// TestConcurrentSameRole: the races of the dispatcher retrying while an
// earlier attempt still runs. Re-enabling one disabled role from many
// EnsureAccount calls at once always succeeds (the losers of "tuple
// concurrently updated" look again); so does granting one membership from
// many Grant calls at once (the losers of the unique index look again and
// find the membership).
func TestConcurrentSameRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, func(c *Config) { c.MaxConns = 8 })
	ctx := tctx(t)
	a := account(3, "busy@example.com")
	ref, err := c.EnsureAccount(ctx, a)
	must(t, err)
	for round := range 3 {
		must(t, c.DisableAccount(ctx, ref))
		a.UserName = fmt.Sprintf("busy%d@example.com", round) // the comment changes too
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				var got string
				got, errs[i] = c.EnsureAccount(ctx, a)
				if errs[i] == nil && got != ref {
					errs[i] = fmt.Errorf("ref %q, want %q", got, ref)
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, EnsureAccount %d: %v", round, i, err)
			}
		}
		if st, _ := inspect(t, ref); !st.Enabled || st.UserName != a.UserName {
			t.Errorf("round %d: %+v", round, st)
		}
	}
	for round := range 3 {
		g := e.groups[round%2]
		must(t, c.Revoke(ctx, ref, g))
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = c.Grant(ctx, ref, g) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, Grant %d: %v", round, i, err)
			}
		}
		if st, _ := inspect(t, ref); !slices.Contains(st.Entitlements, g) {
			t.Errorf("round %d: %q not granted: %q", round, g, st.Entitlements)
		}
	}
}

// TestGrantPolicy: the groups Grant refuses, with and without
// allowed_groups, and that a refusal changes nothing.
func TestGrantPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	su, climb, missing := e.stem+"su", e.stem+"climb", e.stem+"missing"
	adminExec(t, "CREATE ROLE "+ident(su)+" SUPERUSER NOLOGIN")
	adminExec(t, "CREATE ROLE "+ident(climb)+" NOLOGIN")
	adminExec(t, "GRANT "+ident(su)+" TO "+ident(climb))
	open, _ := e.open(t, nil)
	listed, _ := e.open(t, func(c *Config) {
		c.AllowedGroups = []string{e.groups[0], su, climb, missing, "pg_read_all_data", "postgres"}
	})
	ctx := tctx(t)
	ref, err := open.EnsureAccount(ctx, account(1, "grantee"))
	must(t, err)
	peer, err := open.EnsureAccount(ctx, account(2, "peer"))
	must(t, err)

	cases := []struct {
		name  string
		conn  *Conn
		group string
		want  connectors.Class // -1: granted
	}{
		{"ordinary group", open, e.groups[1], -1},
		{"superuser", open, "postgres", connectors.Permanent},
		{"superuser group", open, su, connectors.Permanent},
		{"member of a superuser", open, climb, connectors.Permanent},
		{"predefined role", open, "pg_write_all_data", connectors.Permanent},
		{"predefined role (monitor)", open, "pg_monitor", connectors.Permanent},
		{"missing group", open, missing, connectors.Permanent},
		{"another account", open, peer, connectors.Permanent},
		{"itself", open, ref, connectors.Permanent},
		{"listed group", listed, e.groups[0], -1},
		{"unlisted group", listed, e.groups[1], connectors.Permanent},
		{"unlisted predefined role", listed, "pg_write_all_data", connectors.Permanent},
		{"listed predefined role", listed, "pg_read_all_data", -1},
		{"listed superuser", listed, "postgres", connectors.Permanent},
		{"listed superuser group", listed, su, connectors.Permanent},
		{"listed member of a superuser", listed, climb, connectors.Permanent},
		{"listed missing group", listed, missing, connectors.Permanent},
	}
	var granted []string
	for _, tc := range cases {
		err := tc.conn.Grant(ctx, ref, tc.group)
		if tc.want < 0 {
			if err != nil {
				t.Errorf("%s: Grant %q: %v", tc.name, tc.group, err)
			}
			granted = append(granted, tc.group)
			continue
		}
		wantClass(t, tc.name, err, tc.want)
	}
	slices.Sort(granted)
	if st, _ := inspect(t, ref); !slices.Equal(st.Entitlements, granted) {
		t.Errorf("memberships = %q, want exactly %q", st.Entitlements, granted)
	}
	// Revoke ignores allowed_groups: access can always be taken away.
	must(t, listed.Revoke(ctx, ref, e.groups[1]))
	must(t, listed.Revoke(ctx, ref, "pg_read_all_data"))
	must(t, open.Revoke(ctx, ref, missing))
	if st, _ := inspect(t, ref); !slices.Equal(st.Entitlements, e.groups[:1]) {
		t.Errorf("after revokes: %q, want %q", st.Entitlements, e.groups[:1])
	}
	wantClass(t, "Grant to a missing role", open.Grant(ctx, e.prefix+"gone", e.groups[0]), connectors.NotFound)
}

// TestRevokeSessionsEndsLiveSession connects as the person's role, then
// disables it and revokes its sessions: the live connection dies and a
// new one is refused.
func TestRevokeSessionsEndsLiveSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, nil)
	ctx := tctx(t)
	ref, err := c.EnsureAccount(ctx, account(1, "leaver@example.com"))
	must(t, err)
	adminExec(t, "ALTER ROLE "+ident(ref)+" PASSWORD 'only-for-this-test'")

	conf, err := pgx.ParseConfig(testDSN(t))
	must(t, err)
	conf.User, conf.Password = ref, "only-for-this-test"
	victims := make([]*pgx.Conn, 2)
	for i := range victims {
		v, err := pgx.ConnectConfig(ctx, conf)
		if err != nil {
			t.Fatalf("connecting as %s: %v", ref, err)
		}
		t.Cleanup(func() { v.Close(context.Background()) })
		must(t, v.Ping(ctx))
		victims[i] = v
	}
	sessions := func() int {
		var n int
		must(t, adminPool(t).QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1`, ref).Scan(&n))
		return n
	}
	if n := sessions(); n != 2 {
		t.Fatalf("%d sessions of %s before revoking, want 2", n, ref)
	}
	must(t, c.DisableAccount(ctx, ref))
	must(t, c.RevokeSessions(ctx, ref))
	if n := sessions(); n != 0 {
		t.Errorf("%d sessions of %s after RevokeSessions", n, ref)
	}
	for i, v := range victims {
		if _, err := v.Exec(ctx, "SELECT 1"); err == nil {
			t.Errorf("session %d still answers after RevokeSessions", i)
		}
	}
	if v, err := pgx.ConnectConfig(ctx, conf); err == nil {
		v.Close(ctx)
		t.Error("a disabled role could log in again")
	}
	must(t, c.RevokeSessions(ctx, ref)) // nothing left: nil
}

// TestListAccountsPages checks the keyset paging with a tiny page.
func TestListAccountsPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, nil)
	c.pageSize = 2
	ctx := tctx(t)
	var want []string
	for i := range 5 {
		ref, err := c.EnsureAccount(ctx, account(i+1, fmt.Sprintf("page%d", i)))
		must(t, err)
		want = append(want, ref)
	}
	must(t, c.Grant(ctx, want[3], e.groups[1]))
	must(t, c.Grant(ctx, want[3], e.groups[0]))
	list, err := c.ListAccounts(ctx)
	must(t, err)
	var got []string
	for _, st := range list {
		got = append(got, st.Ref)
		wantEnt := []string(nil)
		if st.Ref == want[3] {
			wantEnt = slices.Sorted(slices.Values(e.groups))
		}
		if !slices.Equal(st.Entitlements, wantEnt) || st.IdentityID == "" || !strings.HasPrefix(st.UserName, "page") {
			t.Errorf("listed %+v", st)
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ListAccounts refs = %q, want %q", got, want)
	}
}

// TestRotateSecret sets a shared role's password and proves three things:
// the clear secret never crossed the wire (the proxy recorded every byte
// the connector sent), PostgreSQL stored our verifier as a SCRAM secret
// rather than hashing it as a password, and a real SCRAM client (pgx)
// holding the secret authenticates against that stored verifier. The test
// server's pg_hba.conf trusts 127.0.0.1, so PostgreSQL itself cannot be
// asked to check the password over TCP; a SCRAM server in the test plays
// its part with the rolpassword PostgreSQL stored.
func TestRotateSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared, unlisted := e.stem+"shared", e.stem+"unlisted"
	adminExec(t, "CREATE ROLE "+ident(shared)+" LOGIN PASSWORD 'old-password'")
	adminExec(t, "CREATE ROLE "+ident(unlisted)+" LOGIN")
	c, p := e.open(t, func(c *Config) { c.SharedAccounts = []string{shared, e.stem + "gone"} })
	ctx := tctx(t)
	secret := []byte(`N3w-s3cret'; DROP ROLE postgres; --\`)

	must(t, c.RotateSecret(ctx, shared, secret))
	sent := p.clientBytes()
	if bytes.Contains(sent, secret) || bytes.Contains(sent, []byte("N3w-s3cret")) {
		t.Fatal("the clear secret was sent to the server")
	}
	if !bytes.Contains(sent, []byte("SCRAM-SHA-256$4096:")) {
		t.Fatal("the proxy did not see the ALTER ROLE statement (recording broken?)")
	}
	var stored string
	must(t, adminPool(t).QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, shared).Scan(&stored))
	if !strings.HasPrefix(stored, "SCRAM-SHA-256$4096:") || !bytes.Contains(sent, []byte(stored)) {
		t.Fatalf("rolpassword = %q: want the verifier the connector sent, stored as is", stored)
	}
	addr := scramServer(t, stored)
	if err := scramLogin(ctx, addr, shared, string(secret)); err != nil {
		t.Errorf("pgx could not authenticate with the new secret against the stored verifier: %v", err)
	}
	for _, wrong := range []string{"old-password", string(secret[:len(secret)-1]), string(stored)} {
		if err := scramLogin(ctx, addr, shared, wrong); err == nil {
			t.Errorf("password %q accepted by the stored verifier", wrong)
		}
	}
	// A second rotation changes the salt and the keys.
	must(t, c.RotateSecret(ctx, shared, secret))
	var again string
	must(t, adminPool(t).QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, shared).Scan(&again))
	if again == stored {
		t.Error("a second rotation stored the same verifier (salt not random)")
	}

	wantClass(t, "unlisted account", c.RotateSecret(ctx, unlisted, secret), connectors.Permanent)
	wantClass(t, "postgres", c.RotateSecret(ctx, "postgres", secret), connectors.Permanent)
	wantClass(t, "listed but missing", c.RotateSecret(ctx, e.stem+"gone", secret), connectors.NotFound)
	wantClass(t, "empty secret", c.RotateSecret(ctx, shared, nil), connectors.Permanent)
	wantClass(t, "non-ASCII secret", c.RotateSecret(ctx, shared, []byte("pässword")), connectors.Permanent)
	wantClass(t, "NUL in secret", c.RotateSecret(ctx, shared, []byte("a\x00b")), connectors.Permanent)
	var unlistedPW *string
	must(t, adminPool(t).QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, unlisted).Scan(&unlistedPW))
	if unlistedPW != nil {
		t.Error("a role outside shared_accounts got a password")
	}
}

// TestDeadlineCancelsServerWork: a DisableAccount whose context ends while
// its ALTER ROLE waits for another transaction's lock on the role returns
// context.DeadlineExceeded, the server abandons the statement (no backend
// keeps waiting, holding its transaction open), and nothing is applied.
func TestDeadlineCancelsServerWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, nil)
	ctx := tctx(t)
	ref, err := c.EnsureAccount(ctx, account(1, "blocked"))
	must(t, err)
	// Hold a lock GRANT needs: an open transaction that altered the role.
	tx, err := adminPool(t).Begin(ctx)
	must(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, "ALTER ROLE "+ident(ref)+" CONNECTION LIMIT 5")
	must(t, err)

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.DisableAccount(short, ref) }()
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		tx.Rollback(context.Background()) // let the stuck call finish
		t.Fatal("DisableAccount ignored its deadline while blocked on a lock")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DisableAccount blocked past its deadline = %v, want context.DeadlineExceeded", err)
	}
	if cl, _ := connectors.ClassOf(err); cl != connectors.Retryable {
		t.Errorf("class %v, want retryable", cl)
	}
	// The server gave up the statement: no backend of the connector is
	// still waiting on the lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		must(t, adminPool(t).QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'jmlgate' AND wait_event_type = 'Lock' AND query LIKE '%'||$1||'%'`, ref).Scan(&waiting))
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends still wait on the lock after the deadline", waiting)
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(t, tx.Rollback(ctx))
	if st, _ := inspect(t, ref); !st.Enabled {
		t.Error("the cancelled DisableAccount took effect")
	}
	must(t, c.DisableAccount(ctx, ref))
}
