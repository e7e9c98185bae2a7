package connectortest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/connectors/connectortest"
)

// Memory is held to the same contract as every real connector.
func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	connectortest.Run(t, func(t *testing.T) connectortest.Target {
		m := connectortest.NewMemory()
		return connectortest.Target{
			Conn: m,
			Inspect: func(t *testing.T, ref string) (connectors.AccountState, bool) {
				return m.Account(ref)
			},
			Entitlements: []string{"group:Engineering", "group:Sales"},
			MissingRef:   "ref-00000000-0000-4000-8000-999999999999",
		}
	})
}

var (
	ada = connectors.Account{IdentityID: "id-ada", UserName: "ada@example.com"}
	bob = connectors.Account{IdentityID: "id-bob", UserName: "bob@example.com"}
)

// state renders every account as "ref userName identity on|off [ents]".
func state(m *connectortest.Memory) []string {
	var out []string
	for _, a := range m.Accounts() {
		on := "off"
		if a.Enabled {
			on = "on"
		}
		out = append(out, fmt.Sprintf("%s %s %s %s %v", a.Ref, a.UserName, a.IdentityID, on, a.Entitlements))
	}
	return out
}

func TestMemory(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	cases := []struct {
		name  string
		setup func(m *connectortest.Memory)
		run   func(ctx context.Context, m *connectortest.Memory) []error
		errs  []error // errors.Is each result; nil wants success
		calls []string
		state []string
	}{
		{
			name: "refs, log and state",
			run: func(ctx context.Context, m *connectortest.Memory) []error {
				ref, err := m.EnsureAccount(ctx, ada)
				return []error{err, m.Grant(ctx, ref, "eng"), m.Grant(ctx, ref, "admin"), m.Revoke(ctx, ref, "eng"),
					m.DisableAccount(ctx, ref), m.RevokeSessions(ctx, ref), m.Revoke(ctx, "ref-gone", "eng")}
			},
			errs: make([]error, 7),
			calls: []string{"ensure ada@example.com", "grant ada@example.com eng", "grant ada@example.com admin",
				"revoke ada@example.com eng", "disable ada@example.com", "revoke_sessions ada@example.com", "revoke ref-gone eng"},
			state: []string{"ref-id-ada ada@example.com id-ada off [admin]"},
		},
		{
			name: "grant to a missing account",
			run: func(ctx context.Context, m *connectortest.Memory) []error {
				err := m.Grant(ctx, "ref-gone", "eng")
				if !connectors.IsNotFound(err) {
					return []error{fmt.Errorf("Grant to a missing account = %v, want NotFound", err)}
				}
				return []error{nil}
			},
			errs:  []error{nil},
			calls: []string{"grant ref-gone eng"},
		},
		{
			name:  "queued faults, nil entries pass",
			setup: func(m *connectortest.Memory) { m.FailNext(nil, boom, nil) },
			run: func(ctx context.Context, m *connectortest.Memory) []error {
				ref, err := m.EnsureAccount(ctx, ada)
				return []error{err, m.Grant(ctx, ref, "eng"), m.Grant(ctx, ref, "wiki"), m.Grant(ctx, ref, "eng")}
			},
			errs: []error{nil, boom, nil, nil},
			calls: []string{"ensure ada@example.com", "grant ada@example.com eng", "grant ada@example.com wiki",
				"grant ada@example.com eng"},
			state: []string{"ref-id-ada ada@example.com id-ada on [eng wiki]"},
		},
		{
			name: "faults keyed by call and by op, then cleared",
			setup: func(m *connectortest.Memory) {
				m.FailOn("grant ada@example.com admin", boom)
				m.FailOn("disable", context.DeadlineExceeded)
			},
			run: func(ctx context.Context, m *connectortest.Memory) []error {
				ref, _ := m.EnsureAccount(ctx, ada)
				out := []error{m.Grant(ctx, ref, "admin"), m.Grant(ctx, ref, "eng"), m.DisableAccount(ctx, ref)}
				m.FailOn("disable", nil)
				return append(out, m.DisableAccount(ctx, ref))
			},
			errs: []error{boom, nil, context.DeadlineExceeded, nil},
			calls: []string{"ensure ada@example.com", "grant ada@example.com admin", "grant ada@example.com eng",
				"disable ada@example.com", "disable ada@example.com"},
			state: []string{"ref-id-ada ada@example.com id-ada off [eng]"},
		},
		{
			name: "hook sees the account and can refuse",
			setup: func(m *connectortest.Memory) {
				m.OnCall(func(c connectortest.Call) error {
					if _, found := m.Account(c.Ref); c.Op == "grant" && (!found || c.IdentityID != "id-ada") {
						return fmt.Errorf("%s for %q", c, c.IdentityID)
					}
					if c.Op == "ensure" && c.IdentityID == "id-bob" {
						return boom
					}
					return nil
				})
			},
			run: func(ctx context.Context, m *connectortest.Memory) []error {
				ref, err := m.EnsureAccount(ctx, ada)
				errGrant := m.Grant(ctx, ref, "eng")
				_, errBob := m.EnsureAccount(ctx, bob)
				return []error{err, errGrant, errBob}
			},
			errs:  []error{nil, nil, boom},
			calls: []string{"ensure ada@example.com", "grant ada@example.com eng", "ensure bob@example.com"},
			state: []string{"ref-id-ada ada@example.com id-ada on [eng]"},
		},
		{
			name: "lookup adopts by userName, finds by identity, refuses another's name",
			setup: func(m *connectortest.Memory) {
				m.Put(connectors.AccountState{Ref: "a1", UserName: "ada@example.com", Entitlements: []string{"x", "eng", "x"}})
				m.Put(connectors.AccountState{Ref: "b1", UserName: "robert", IdentityID: "id-bob"})
				m.Put(connectors.AccountState{Ref: "ref-id-cy", UserName: "squatter", IdentityID: "id-sq"})
			},
			run: func(ctx context.Context, m *connectortest.Memory) []error {
				refA, errA := m.EnsureAccount(ctx, ada)
				refB, errB := m.EnsureAccount(ctx, bob)
				refC, errC := m.EnsureAccount(ctx, connectors.Account{IdentityID: "id-cy", UserName: "cy"})
				_, errD := m.EnsureAccount(ctx, connectors.Account{IdentityID: "id-dan", UserName: "robert"})
				if refA != "a1" || refB != "b1" || refC != "ref-id-cy-2" {
					return []error{fmt.Errorf("refs %q %q %q", refA, refB, refC)}
				}
				if connectors.IsNotFound(errD) || errD == nil {
					return []error{fmt.Errorf("ensure of a taken userName = %v", errD)}
				}
				if c, _ := connectors.ClassOf(errD); c != connectors.Conflict {
					return []error{fmt.Errorf("ensure of a taken userName: class %v", c)}
				}
				return []error{errA, errB, errC}
			},
			errs:  []error{nil, nil, nil},
			calls: []string{"ensure ada@example.com", "ensure bob@example.com", "ensure cy", "ensure robert"},
			state: []string{
				"a1 ada@example.com id-ada on [eng x]",
				"b1 robert id-bob on []",
				"ref-id-cy squatter id-sq off []",
				"ref-id-cy-2 cy id-cy on []",
			},
		},
		{
			name: "a done context is neither recorded nor applied",
			run: func(ctx context.Context, m *connectortest.Memory) []error {
				m.FailNext(boom)
				done, cancel := context.WithCancel(ctx)
				cancel()
				_, err := m.EnsureAccount(done, ada)
				_, lerr := m.ListAccounts(done)
				_, err2 := m.EnsureAccount(ctx, ada) // the queued fault is still there
				return []error{err, lerr, err2, m.RevokeSessions(done, "x")}
			},
			errs:  []error{context.Canceled, context.Canceled, boom, context.Canceled},
			calls: []string{"ensure ada@example.com"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := connectortest.NewMemory()
			if c.setup != nil {
				c.setup(m)
			}
			errs := c.run(context.Background(), m)
			if len(errs) != len(c.errs) {
				t.Fatalf("results %v, want %d", errs, len(c.errs))
			}
			for i, err := range errs {
				if c.errs[i] == nil && err != nil || c.errs[i] != nil && !errors.Is(err, c.errs[i]) {
					t.Errorf("result %d = %v, want %v", i, err, c.errs[i])
				}
			}
			if got := m.Calls(); !slices.Equal(got, c.calls) {
				t.Errorf("calls\n got %q\nwant %q", got, c.calls)
			}
			if got := state(m); !slices.Equal(got, c.state) {
				t.Errorf("state\n got %q\nwant %q", got, c.state)
			}
			if got := m.TakeCalls(); !slices.Equal(got, c.calls) || len(m.Calls()) != 0 {
				t.Errorf("TakeCalls = %q and left %q", got, m.Calls())
			}
		})
	}
}

func TestMemoryList(t *testing.T) {
	t.Parallel()
	m := connectortest.NewMemory()
	m.Put(connectors.AccountState{Ref: "b", UserName: "bob", Enabled: true, Entitlements: []string{"eng"}})
	var hooked []int
	m.OnList(func() {
		hooked = append(hooked, m.Lists())
		m.Put(connectors.AccountState{Ref: "a", UserName: "ada"}) // lands before the snapshot
	})
	list, err := m.ListAccounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Ref != "a" || list[1].Ref != "b" || !slices.Equal(list[1].Entitlements, []string{"eng"}) {
		t.Errorf("list = %+v", list)
	}
	list[1].Entitlements[0] = "changed" // a copy
	if st, _ := m.AccountNamed("bob"); st.Entitlements[0] != "eng" {
		t.Errorf("ListAccounts shares its slices with the target: %+v", st)
	}
	m.FailOn("list", boomList)
	if _, err := m.ListAccounts(context.Background()); !errors.Is(err, boomList) {
		t.Errorf("ListAccounts with a list fault = %v", err)
	}
	if n := m.Lists(); n != 2 || !slices.Equal(hooked, []int{0, 1}) || len(m.Calls()) != 0 {
		t.Errorf("Lists = %d, hook saw %v, calls %q", n, hooked, m.Calls())
	}
	if _, found := m.AccountNamed("nobody"); found {
		t.Error("AccountNamed found nobody")
	}
}

var boomList = errors.New("list boom")

func TestMemoryBare(t *testing.T) {
	t.Parallel()
	m := connectortest.NewMemory()
	b := m.Bare()
	if _, ok := b.(connectors.Lister); ok {
		t.Error("Bare is a Lister")
	}
	if _, ok := b.(connectors.SessionRevoker); ok {
		t.Error("Bare is a SessionRevoker")
	}
	ctx := context.Background()
	ref, err := b.EnsureAccount(ctx, ada)
	if err == nil {
		err = errors.Join(b.Grant(ctx, ref, "eng"), b.Grant(ctx, ref, "wiki"), b.Revoke(ctx, ref, "eng"), b.DisableAccount(ctx, ref))
	}
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Account(ref); st.Enabled || !slices.Equal(st.Entitlements, []string{"wiki"}) || len(m.Calls()) != 5 {
		t.Errorf("through Bare: %+v, calls %q", st, m.Calls())
	}
}
