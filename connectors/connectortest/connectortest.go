// Package connectortest is the conformance suite every connector runs:
//
//	func TestConformance(t *testing.T) {
//		connectortest.Run(t, func(t *testing.T) connectortest.Target { … })
//	}
//
// The suite checks the contract of package connectors against a real target
// (an httptest server speaking the real protocol, a real database): every
// method is idempotent, revoking and disabling what is not there succeeds,
// a cancelled context is honoured, and HTTP failures are classified so the
// dispatcher can act on them. Effects are checked through Target.Inspect,
// which reads the target directly, never through the connector under test.
package connectortest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// Target is one connector wired to a fresh, empty target.
type Target struct {
	Conn connectors.Connector
	// Inspect reads the account with the given ref straight from the
	// target. found is false when the target has no such account.
	Inspect func(t *testing.T, ref string) (st connectors.AccountState, found bool)
	// Entitlements are at least two entitlements the target accepts.
	Entitlements []string
	// MissingRef is a well-formed ref of an account that does not exist.
	MissingRef string
	// Fail, for HTTP targets, makes the target answer the next request
	// with status and header instead of serving it. nil skips the
	// classification tests.
	Fail func(status int, header http.Header)
	// Hang, for network targets, makes the target hold every request
	// until release is called. nil skips the deadline test.
	Hang func() (release func())
}

// Open returns a new Target. Run calls it once per subtest, and subtests run
// in parallel, so every call must return an independent target (or an
// independent namespace on a shared one).
type Open func(t *testing.T) Target

// Run runs the conformance suite.
func Run(t *testing.T, open Open) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, tg Target)
	}{
		{"EnsureCreatesEnabledAccount", testEnsureCreates},
		{"EnsureIsIdempotent", testEnsureIdempotent},
		{"GrantIsIdempotent", testGrantIdempotent},
		{"RevokeIsIdempotent", testRevokeIdempotent},
		{"RevokeMissingSucceeds", testRevokeMissing},
		{"DisableIsIdempotent", testDisableIdempotent},
		{"DisableMissingSucceeds", testDisableMissing},
		{"EnsureReenablesDisabled", testEnsureReenables},
		{"CancelledContext", testCancelled},
		{"DeadlineHonoured", testDeadline},
		{"HTTPFailuresClassified", testClassified},
		{"ConcurrentAccounts", testConcurrent},
		{"SessionRevoker", testSessionRevoker},
		{"Lister", testLister},
		{"Finder", testFinder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := open(t)
			if len(tg.Entitlements) < 2 {
				t.Fatal("connectortest: Target.Entitlements needs at least two entitlements")
			}
			tc.fn(t, tg)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// account returns a distinct account per call within a test.
func account(t *testing.T, i int) connectors.Account {
	return connectors.Account{
		IdentityID:  fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1),
		UserName:    fmt.Sprintf("user%d@example.com", i+1),
		DisplayName: fmt.Sprintf("User %d", i+1),
		GivenName:   "User",
		FamilyName:  fmt.Sprintf("Number%d", i+1),
		Email:       fmt.Sprintf("user%d@example.com", i+1),
	}
}

func ensure(t *testing.T, tg Target, i int) string {
	t.Helper()
	ref, err := tg.Conn.EnsureAccount(ctx(t), account(t, i))
	if err != nil {
		t.Fatalf("EnsureAccount: %v", err)
	}
	if ref == "" {
		t.Fatal("EnsureAccount returned an empty ref")
	}
	return ref
}

func inspect(t *testing.T, tg Target, ref string) connectors.AccountState {
	t.Helper()
	st, found := tg.Inspect(t, ref)
	if !found {
		t.Fatalf("target has no account %q", ref)
	}
	slices.Sort(st.Entitlements)
	return st
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantEntitlements(t *testing.T, tg Target, ref string, want ...string) {
	t.Helper()
	got := inspect(t, tg, ref).Entitlements
	want = slices.Sorted(slices.Values(want))
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("entitlements of %s = %q, want %q", ref, got, want)
	}
}

func testEnsureCreates(t *testing.T, tg Target) {
	ref := ensure(t, tg, 0)
	st := inspect(t, tg, ref)
	if !st.Enabled {
		t.Error("new account is not enabled")
	}
	if st.UserName != account(t, 0).UserName {
		t.Errorf("userName = %q, want %q", st.UserName, account(t, 0).UserName)
	}
	if len(st.Entitlements) != 0 {
		t.Errorf("new account has entitlements %q", st.Entitlements)
	}
}

func testEnsureIdempotent(t *testing.T, tg Target) {
	ref1 := ensure(t, tg, 0)
	ref2 := ensure(t, tg, 0)
	if ref1 != ref2 {
		t.Fatalf("second EnsureAccount returned %q, first %q: want the same account", ref2, ref1)
	}
	other := ensure(t, tg, 1)
	if other == ref1 {
		t.Fatalf("two different people got the same account %q", ref1)
	}
	if !inspect(t, tg, ref1).Enabled {
		t.Error("account disabled by a second EnsureAccount")
	}
}

func testGrantIdempotent(t *testing.T, tg Target) {
	ref := ensure(t, tg, 0)
	e0, e1 := tg.Entitlements[0], tg.Entitlements[1]
	must(t, "Grant", tg.Conn.Grant(ctx(t), ref, e0))
	must(t, "Grant again", tg.Conn.Grant(ctx(t), ref, e0))
	wantEntitlements(t, tg, ref, e0)
	must(t, "Grant second", tg.Conn.Grant(ctx(t), ref, e1))
	wantEntitlements(t, tg, ref, e0, e1)
}

func testRevokeIdempotent(t *testing.T, tg Target) {
	ref := ensure(t, tg, 0)
	e0, e1 := tg.Entitlements[0], tg.Entitlements[1]
	must(t, "Grant", tg.Conn.Grant(ctx(t), ref, e0))
	must(t, "Grant", tg.Conn.Grant(ctx(t), ref, e1))
	must(t, "Revoke", tg.Conn.Revoke(ctx(t), ref, e0))
	must(t, "Revoke again", tg.Conn.Revoke(ctx(t), ref, e0))
	wantEntitlements(t, tg, ref, e1)
	// Another account's grant is untouched by revoking from this one.
	other := ensure(t, tg, 1)
	must(t, "Grant other", tg.Conn.Grant(ctx(t), other, e0))
	must(t, "Revoke", tg.Conn.Revoke(ctx(t), ref, e0))
	wantEntitlements(t, tg, other, e0)
}

func testRevokeMissing(t *testing.T, tg Target) {
	ref := ensure(t, tg, 0)
	if err := tg.Conn.Revoke(ctx(t), ref, tg.Entitlements[0]); err != nil {
		t.Errorf("Revoke of an entitlement never granted: %v, want nil", err)
	}
	if err := tg.Conn.Revoke(ctx(t), tg.MissingRef, tg.Entitlements[0]); err != nil {
		t.Errorf("Revoke from a missing account: %v, want nil", err)
	}
}

func testDisableIdempotent(t *testing.T, tg Target) {
	ref := ensure(t, tg, 0)
	must(t, "DisableAccount", tg.Conn.DisableAccount(ctx(t), ref))
	must(t, "DisableAccount again", tg.Conn.DisableAccount(ctx(t), ref))
	if inspect(t, tg, ref).Enabled {
		t.Error("account still enabled after DisableAccount")
	}
}

func testDisableMissing(t *testing.T, tg Target) {
	if err := tg.Conn.DisableAccount(ctx(t), tg.MissingRef); err != nil {
		t.Errorf("DisableAccount of a missing account: %v, want nil", err)
	}
}

func testEnsureReenables(t *testing.T, tg Target) {
	ref := ensure(t, tg, 0)
	must(t, "DisableAccount", tg.Conn.DisableAccount(ctx(t), ref))
	again := ensure(t, tg, 0)
	if again != ref {
		t.Fatalf("EnsureAccount after disable returned %q, want the existing %q (a rehire keeps the account)", again, ref)
	}
	if !inspect(t, tg, ref).Enabled {
		t.Error("EnsureAccount did not re-enable a disabled account")
	}
}

func testCancelled(t *testing.T, tg Target) {
	ref := ensure(t, tg, 0)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	e := tg.Entitlements[0]
	calls := map[string]func() error{
		"EnsureAccount":  func() error { _, err := tg.Conn.EnsureAccount(c, account(t, 1)); return err },
		"Grant":          func() error { return tg.Conn.Grant(c, ref, e) },
		"Revoke":         func() error { return tg.Conn.Revoke(c, ref, e) },
		"DisableAccount": func() error { return tg.Conn.DisableAccount(c, ref) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want an error wrapping context.Canceled", name, err)
		}
		if cl, _ := connectors.ClassOf(err); err != nil && cl != connectors.Retryable {
			t.Errorf("%s cancelled: class %v, want retryable (an interrupted job runs again)", name, cl)
		}
	}
	st := inspect(t, tg, ref)
	if !st.Enabled || len(st.Entitlements) != 0 {
		t.Errorf("cancelled calls changed the target: %+v", st)
	}
}

func testDeadline(t *testing.T, tg Target) {
	if tg.Hang == nil {
		t.Skip("target cannot hang")
	}
	ref := ensure(t, tg, 0)
	release := tg.Hang()
	defer release()
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tg.Conn.Grant(c, ref, tg.Entitlements[0]) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Grant past its deadline = %v, want an error wrapping context.DeadlineExceeded", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Grant ignored its context deadline against a hanging target")
	}
}

func testClassified(t *testing.T, tg Target) {
	if tg.Fail == nil {
		t.Skip("target is not HTTP")
	}
	ref := ensure(t, tg, 0)
	cases := []struct {
		status     int
		header     http.Header
		class      connectors.Class
		retryAfter time.Duration
	}{
		{http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}, connectors.Retryable, 7 * time.Second},
		{http.StatusTooManyRequests, nil, connectors.Retryable, 0},
		{http.StatusInternalServerError, nil, connectors.Retryable, 0},
		{http.StatusBadGateway, nil, connectors.Retryable, 0},
		{http.StatusServiceUnavailable, http.Header{"Retry-After": {"2"}}, connectors.Retryable, 2 * time.Second},
		{http.StatusBadRequest, nil, connectors.Permanent, 0},
		{http.StatusUnauthorized, nil, connectors.Permanent, 0},
		{http.StatusForbidden, nil, connectors.Permanent, 0},
	}
	for _, c := range cases {
		tg.Fail(c.status, c.header)
		err := tg.Conn.Grant(ctx(t), ref, tg.Entitlements[0])
		if err == nil {
			t.Errorf("HTTP %d: Grant succeeded", c.status)
			continue
		}
		cl, after := connectors.ClassOf(err)
		if cl != c.class || after != c.retryAfter {
			t.Errorf("HTTP %d: class %v retry-after %v, want %v %v (err %v)", c.status, cl, after, c.class, c.retryAfter, err)
		}
	}
	// The target serves normally again and nothing was half-applied.
	must(t, "Grant after faults", tg.Conn.Grant(ctx(t), ref, tg.Entitlements[0]))
	wantEntitlements(t, tg, ref, tg.Entitlements[0])
}

func testConcurrent(t *testing.T, tg Target) {
	const n = 8
	refs := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ref, err := tg.Conn.EnsureAccount(ctx(t), account(t, i))
			if err == nil {
				err = tg.Conn.Grant(ctx(t), ref, tg.Entitlements[i%2])
			}
			refs[i] = ref
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "concurrent ensure+grant", err)
	}
	for i, ref := range refs {
		wantEntitlements(t, tg, ref, tg.Entitlements[i%2])
	}
}

func testSessionRevoker(t *testing.T, tg Target) {
	sr, ok := tg.Conn.(connectors.SessionRevoker)
	if !ok {
		t.Skip("not a SessionRevoker")
	}
	ref := ensure(t, tg, 0)
	must(t, "RevokeSessions", sr.RevokeSessions(ctx(t), ref))
	must(t, "RevokeSessions again", sr.RevokeSessions(ctx(t), ref))
	if err := sr.RevokeSessions(ctx(t), tg.MissingRef); err != nil {
		t.Errorf("RevokeSessions of a missing account: %v, want nil", err)
	}
}

func testLister(t *testing.T, tg Target) {
	l, ok := tg.Conn.(connectors.Lister)
	if !ok {
		t.Skip("not a Lister")
	}
	a := ensure(t, tg, 0)
	b := ensure(t, tg, 1)
	must(t, "Grant", tg.Conn.Grant(ctx(t), a, tg.Entitlements[0]))
	must(t, "Grant", tg.Conn.Grant(ctx(t), a, tg.Entitlements[1]))
	must(t, "DisableAccount", tg.Conn.DisableAccount(ctx(t), b))
	list, err := l.ListAccounts(ctx(t))
	must(t, "ListAccounts", err)
	byRef := map[string]connectors.AccountState{}
	for _, st := range list {
		byRef[st.Ref] = st
	}
	sa, okA := byRef[a]
	sb, okB := byRef[b]
	if !okA || !okB {
		t.Fatalf("ListAccounts = %+v, want both %s and %s", list, a, b)
	}
	want := slices.Sorted(slices.Values(tg.Entitlements[:2]))
	if !sa.Enabled || !slices.Equal(sa.Entitlements, want) {
		t.Errorf("listed %s = %+v, want enabled with sorted entitlements %q", a, sa, want)
	}
	if sb.Enabled {
		t.Errorf("listed %s enabled after DisableAccount", b)
	}
	if sa.UserName != account(t, 0).UserName {
		t.Errorf("listed userName %q, want %q", sa.UserName, account(t, 0).UserName)
	}
}

func testFinder(t *testing.T, tg Target) {
	f, ok := tg.Conn.(connectors.Finder)
	if !ok {
		t.Skip("not a Finder")
	}
	before, foundBefore, err := f.FindAccount(ctx(t), account(t, 0))
	must(t, "FindAccount before EnsureAccount", err)
	ref := ensure(t, tg, 0)
	if foundBefore && before != ref {
		t.Fatalf("FindAccount before ensure reported ref %q, EnsureAccount then returned %q", before, ref)
	}
	must(t, "Grant", tg.Conn.Grant(ctx(t), ref, tg.Entitlements[0]))
	must(t, "DisableAccount", tg.Conn.DisableAccount(ctx(t), ref))
	stBefore := inspect(t, tg, ref)
	got, found, err := f.FindAccount(ctx(t), account(t, 0))
	must(t, "FindAccount", err)
	if !found || got != ref {
		t.Fatalf("FindAccount after ensure = %q, %v; want %q, true", got, found, ref)
	}
	st := inspect(t, tg, ref)
	if st.Enabled != stBefore.Enabled || !slices.Equal(st.Entitlements, stBefore.Entitlements) {
		t.Fatalf("FindAccount changed the account: %+v, was %+v", st, stBefore)
	}
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.FindAccount(c, account(t, 0)); !errors.Is(err, context.Canceled) {
		t.Errorf("FindAccount with a cancelled context = %v, want context.Canceled", err)
	}
}
