package scim

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/connectors"
)

// FindAccount finds what EnsureAccount would take, and nothing else, and
// never writes to the target.
func TestFindAccount(t *testing.T) {
	t.Parallel()
	const id = "11111111-2222-4333-8444-000000000001"
	cases := []struct {
		name string
		// setup prepares the target and returns the ref FindAccount must
		// return ("" for not found).
		setup    func(t *testing.T, s *saas, c *Conn) string
		userName string
		adopt    bool
	}{
		{
			name:     "AbsentBeforeEnsure",
			setup:    func(*testing.T, *saas, *Conn) string { return "" },
			userName: "pat@example.com",
		},
		{
			name: "FoundAfterEnsureWithSameRef",
			setup: func(t *testing.T, s *saas, c *Conn) string {
				ref, err := c.EnsureAccount(testCtx(t), connectors.Account{IdentityID: id, UserName: "pat@example.com"})
				if err != nil {
					t.Fatalf("EnsureAccount: %v", err)
				}
				return ref
			},
			userName: "pat@example.com",
		},
		{
			name:     "FoundByExternalIDAfterRename",
			setup:    func(_ *testing.T, s *saas, _ *Conn) string { return s.createUser("pat.old@example.com", id, true) },
			userName: "pat@example.com",
		},
		{
			name:     "FoundWhenDisabled",
			setup:    func(_ *testing.T, s *saas, _ *Conn) string { return s.createUser("pat@example.com", id, false) },
			userName: "pat@example.com",
		},
		{
			name: "AnotherIdentitysAccountIsNotFound",
			setup: func(_ *testing.T, s *saas, _ *Conn) string {
				s.createUser("pat@example.com", "someone-else", true)
				return ""
			},
			userName: "pat@example.com",
			adopt:    true,
		},
		{
			name:     "UnmarkedAccountIsNotFoundWithoutAdopt",
			setup:    func(_ *testing.T, s *saas, _ *Conn) string { s.createUser("pat@example.com", "", true); return "" },
			userName: "pat@example.com",
		},
		{
			name:     "UnmarkedAccountIsFoundWithAdopt",
			setup:    func(_ *testing.T, s *saas, _ *Conn) string { return s.createUser("Pat@Example.com", "", true) },
			userName: "pat@example.com",
			adopt:    true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			cfg := s.config()
			cfg.AdoptExisting = tc.adopt
			c := open(t, cfg)
			want := tc.setup(t, s, c)
			before := snapshot(t, s)
			if want != "" && len(before) == 0 {
				t.Fatal("snapshot sees no user; it cannot show a change")
			}
			seen := len(s.requests())

			ref, found, err := c.FindAccount(testCtx(t), connectors.Account{IdentityID: id, UserName: tc.userName})
			if err != nil {
				t.Fatalf("FindAccount: %v", err)
			}
			if found != (want != "") || ref != want {
				t.Fatalf("FindAccount = %q, %v; want %q, %v", ref, found, want, want != "")
			}
			for _, r := range s.requests()[seen:] {
				if !strings.HasPrefix(r, "GET ") {
					t.Errorf("FindAccount sent %s; it must only read", r)
				}
			}
			if after := snapshot(t, s); !reflect.DeepEqual(before, after) {
				t.Errorf("target changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

// snapshot reads every user straight from the service provider, sorted by
// id.
func snapshot(t *testing.T, s *saas) []connectors.AccountState {
	t.Helper()
	_, body := s.direct("GET", "/Users?count=1000", nil)
	rs, _ := body["Resources"].([]any)
	var out []connectors.AccountState
	for _, r := range rs {
		st, ok := s.inspect(t, r.(map[string]any)["id"].(string))
		if !ok {
			t.Fatalf("user %v listed but not readable", r)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b connectors.AccountState) int { return strings.Compare(a.Ref, b.Ref) })
	return out
}

func TestFindAccountErrors(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	c := open(t, s.config())
	a := connectors.Account{IdentityID: "11111111-2222-4333-8444-000000000001", UserName: "pat@example.com"}
	if _, err := c.EnsureAccount(testCtx(t), a); err != nil {
		t.Fatalf("EnsureAccount: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ref, found, err := c.FindAccount(ctx, a); !errors.Is(err, context.Canceled) || found || ref != "" {
		t.Errorf("cancelled ctx: FindAccount = %q, %v, %v; want an error wrapping context.Canceled", ref, found, err)
	}

	for _, bad := range []connectors.Account{{UserName: a.UserName}, {IdentityID: a.IdentityID}} {
		_, found, err := c.FindAccount(testCtx(t), bad)
		if found {
			t.Errorf("FindAccount(%+v) found an account", bad)
		}
		wantClass(t, err, connectors.Permanent, 0)
	}

	// A target that ignores the filter must not read as "absent".
	s.inject(fault{match: onMethod("GET"), answer: respond(200, nil,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"Resources":[{"id":"x","userName":"someone@example.com"}]}`)})
	_, found, err := c.FindAccount(testCtx(t), a)
	if found {
		t.Error("found an account through a target that ignores the filter")
	}
	wantClass(t, err, connectors.Permanent, 0)
}
