package postgres

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/jmlgate/jmlgate/connectors"
)

// TestFindAccount: FindAccount finds the role EnsureAccount would use,
// reports the DBA's and other identities' roles as not found, and changes
// nothing in the cluster.
func TestFindAccount(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// setup prepares the namespace and returns the ref FindAccount
		// must return for account(1, userName) ("" for not found).
		setup    func(t *testing.T, e *env, c *Conn) string
		userName string
	}{
		{
			name:     "AbsentBeforeEnsure",
			setup:    func(*testing.T, *env, *Conn) string { return "" },
			userName: "jdoe@example.com",
		},
		{
			name: "FoundAfterEnsureWithSameRef",
			setup: func(t *testing.T, _ *env, c *Conn) string {
				ref, err := c.EnsureAccount(tctx(t), account(1, "jdoe@example.com"))
				must(t, err)
				return ref
			},
			userName: "jdoe@example.com",
		},
		{
			name: "FoundDisabledAndLeftDisabled",
			setup: func(t *testing.T, _ *env, c *Conn) string {
				ref, err := c.EnsureAccount(tctx(t), account(1, "jdoe@example.com"))
				must(t, err)
				must(t, c.DisableAccount(tctx(t), ref))
				return ref
			},
			userName: "jdoe@example.com",
		},
		{
			name: "FoundByIdentityAfterRename",
			setup: func(t *testing.T, _ *env, c *Conn) string {
				ref, err := c.EnsureAccount(tctx(t), account(1, "jdoe@example.com"))
				must(t, err)
				return ref
			},
			userName: "jane.smith@example.com",
		},
		{
			name: "AnotherIdentitysRoleIsNotFound",
			setup: func(t *testing.T, _ *env, c *Conn) string {
				_, err := c.EnsureAccount(tctx(t), account(2, "jdoe@example.com"))
				must(t, err)
				return ""
			},
			userName: "jdoe@example.com",
		},
		{
			name: "DBAsRoleIsNotFound",
			setup: func(t *testing.T, e *env, _ *Conn) string {
				adminExec(t, "CREATE ROLE "+ident(RoleName(e.prefix, "jdoe@example.com"))+" NOLOGIN")
				return ""
			},
			userName: "jdoe@example.com",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			c, _ := e.open(t, nil)
			want := tc.setup(t, e, c)
			before := roles(t, e)

			ref, found, err := c.FindAccount(tctx(t), account(1, tc.userName))
			if err != nil {
				t.Fatalf("FindAccount: %v", err)
			}
			if found != (want != "") || ref != want {
				t.Fatalf("FindAccount = %q, %v; want %q, %v", ref, found, want, want != "")
			}
			if after := roles(t, e); !reflect.DeepEqual(before, after) {
				t.Errorf("roles changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

// roles reads every role of e's namespace straight from the catalogs,
// with its raw comment, by name.
func roles(t *testing.T, e *env) map[string]struct {
	st      connectors.AccountState
	comment string
} {
	t.Helper()
	rows, err := adminPool(t).Query(tctx(t), `SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1)`, e.stem)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	out := map[string]struct {
		st      connectors.AccountState
		comment string
	}{}
	for _, n := range names {
		st, _ := inspect(t, n)
		out[n] = struct {
			st      connectors.AccountState
			comment string
		}{st, roleComment(t, n)}
	}
	return out
}

func TestFindAccountErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.open(t, nil)
	a := account(1, "jdoe@example.com")
	ref, err := c.EnsureAccount(tctx(t), a)
	must(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ref, found, err := c.FindAccount(ctx, a); !errors.Is(err, context.Canceled) || found || ref != "" {
		t.Errorf("cancelled ctx: FindAccount = %q, %v, %v; want an error wrapping context.Canceled", ref, found, err)
	}

	for _, bad := range []connectors.Account{{UserName: a.UserName}, {IdentityID: a.IdentityID}, {IdentityID: a.IdentityID, UserName: "bad\x00name"}} {
		_, found, err := c.FindAccount(tctx(t), bad)
		if found {
			t.Errorf("FindAccount(%q) found a role", bad)
		}
		wantClass(t, "FindAccount of an invalid account", err, connectors.Permanent)
	}

	// A copied mark is a conflict, not a guess.
	dup := e.prefix + "copy"
	adminExec(t, "CREATE ROLE "+ident(dup)+" LOGIN")
	adminExec(t, "COMMENT ON ROLE "+ident(dup)+" IS "+mustLiteral(t, roleComment(t, ref)))
	_, found, err := c.FindAccount(tctx(t), a)
	if found {
		t.Error("found a role although two carry the identity")
	}
	wantClass(t, "FindAccount with two marked roles", err, connectors.Conflict)
}
