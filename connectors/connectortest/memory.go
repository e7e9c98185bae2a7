package connectortest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/jmlgate/jmlgate/connectors"
)

// Memory is an in-memory target for tests of the code that drives
// connectors (the dispatcher, reconciliation, the admin API). It keeps
// accounts the way a real target does (a ref, a userName, the jmlgate
// identity id, enabled, sorted entitlements), records every call it
// receives, and can be told to fail. It implements connectors.Connector,
// SessionRevoker and Lister and passes the conformance suite; Bare hides
// the optional capabilities.
//
// Every method is atomic (one mutex) and idempotent as the contract
// requires: disabling, revoking from and ending the sessions of an account
// that does not exist succeed, Grant to one returns a NotFound error. A
// context already done when a call starts fails it with an error wrapping
// ctx.Err() (unclassified, so Retryable), before it is recorded or acts.
//
// All methods are safe for concurrent use. Use NewMemory; the zero value
// is not ready.
type Memory struct {
	mu       sync.Mutex
	accounts map[string]*connectors.AccountState // by ref
	calls    []string
	queue    []error          // for the next calls, in order; nil is success
	faults   map[string]error // by op or by call string
	lists    int
	onCall   func(Call) error
	onList   func()
}

var (
	_ connectors.Connector      = (*Memory)(nil)
	_ connectors.SessionRevoker = (*Memory)(nil)
	_ connectors.Finder         = (*Memory)(nil)
	_ connectors.Lister         = (*Memory)(nil)
)

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{accounts: map[string]*connectors.AccountState{}, faults: map[string]error{}}
}

// Call is one call Memory received. Op is one of "ensure", "disable",
// "grant", "revoke" and "revoke_sessions". For ensure, UserName and
// IdentityID come from the connectors.Account and Ref is ""; for the
// others they are those of the account Ref names, "" when there is none.
type Call struct {
	Op          string
	Ref         string
	UserName    string
	IdentityID  string
	Entitlement string // grant and revoke only
}

// String is the call as Calls records it and FailOn matches it: the op,
// the account's userName (its ref when Memory holds no such account) and
// the entitlement, space separated: "ensure ada@example.com",
// "grant ada@example.com eng", "disable x9".
func (c Call) String() string {
	name := c.UserName
	if name == "" {
		name = c.Ref
	}
	parts := []string{c.Op}
	for _, p := range []string{name, c.Entitlement} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

// Put stores st as the target's account st.Ref, replacing any account of
// that ref, as if created out of band; it is not recorded as a call.
// Entitlements are stored sorted and without duplicates. An empty ref
// panics.
func (m *Memory) Put(st connectors.AccountState) {
	if st.Ref == "" {
		panic("connectortest: Memory.Put of an account without a ref")
	}
	st.Entitlements = slices.Compact(slices.Sorted(slices.Values(st.Entitlements)))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.accounts[st.Ref] = &st
}

// Account returns a copy of the account ref; found is false when Memory
// has none.
func (m *Memory) Account(ref string) (st connectors.AccountState, found bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.accounts[ref]; a != nil {
		return clone(a), true
	}
	return connectors.AccountState{}, false
}

// AccountNamed returns a copy of the account with the given userName (the
// one with the lowest ref if several have it); found is false when none
// has.
func (m *Memory) AccountNamed(userName string) (st connectors.AccountState, found bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ref := range slices.Sorted(maps.Keys(m.accounts)) {
		if a := m.accounts[ref]; a.UserName == userName {
			return clone(a), true
		}
	}
	return connectors.AccountState{}, false
}

// Accounts returns a copy of every account, sorted by ref. Unlike
// ListAccounts it is no call: no hook, fault or count.
func (m *Memory) Accounts() []connectors.AccountState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshot()
}

// Calls returns the calls received so far, oldest first, each formatted by
// Call.String. A call is recorded when it arrives with a live context,
// before faults and the OnCall hook decide its fate, so failed calls are
// in the log too. ListAccounts is counted by Lists, not recorded here.
func (m *Memory) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// TakeCalls returns what Calls would and empties the log.
func (m *Memory) TakeCalls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls
	m.calls = nil
	return c
}

// Lists returns how many times ListAccounts was called with a live
// context.
func (m *Memory) Lists() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lists
}

// FailNext queues errs for the next calls (ListAccounts included), one
// each, in order, after any already queued. A nil entry lets its call
// proceed, so FailNext(nil, nil, err) fails the third call.
func (m *Memory) FailNext(errs ...error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queue = append(m.queue, errs...)
}

// FailOn makes every call matching key return err, until FailOn(key, nil).
// key is an op ("grant", "list" for ListAccounts) or a whole call as
// Call.String formats it ("revoke mallory admin"). A call whose queued
// FailNext entry is an error returns that instead.
func (m *Memory) FailOn(key string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.faults, key)
		return
	}
	m.faults[key] = err
}

// OnCall sets fn to run for each recorded call that no fault failed, just
// before it acts, outside Memory's lock (fn may use m). An error from fn
// fails the call with that error, without acting. nil removes the hook.
// Tests use it to check the caller's state at the moment the target
// receives a grant.
func (m *Memory) OnCall(fn func(Call) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onCall = fn
}

// OnList sets fn to run at the start of each ListAccounts, before the
// snapshot is taken, outside Memory's lock. nil removes the hook.
func (m *Memory) OnList(fn func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onList = fn
}

// Bare returns m as a plain connectors.Connector, without SessionRevoker or
// Lister, for tests of targets that lack them. It shares m's accounts, log,
// faults and hooks.
func (m *Memory) Bare() connectors.Connector { return bare{m} }

type bare struct{ m *Memory }

func (b bare) EnsureAccount(ctx context.Context, a connectors.Account) (string, error) {
	return b.m.EnsureAccount(ctx, a)
}
func (b bare) DisableAccount(ctx context.Context, ref string) error {
	return b.m.DisableAccount(ctx, ref)
}
func (b bare) Grant(ctx context.Context, ref, e string) error  { return b.m.Grant(ctx, ref, e) }
func (b bare) Revoke(ctx context.Context, ref, e string) error { return b.m.Revoke(ctx, ref, e) }

// EnsureAccount looks the account up like the SCIM connector: by userName
// (adopted, recording a.IdentityID, when it holds no identity id or the
// same one), then by identity id. An account found is enabled, its other
// fields left as they are; an account found by userName that belongs to
// another identity is a Conflict. Otherwise a new enabled account is
// created with ref "ref-<IdentityID>" ("ref-<UserName>" without an
// identity id; "-2", "-3", … appended if Put took that ref). An empty
// userName is Permanent.
func (m *Memory) EnsureAccount(ctx context.Context, a connectors.Account) (string, error) {
	if err := m.begin(ctx, Call{Op: "ensure", UserName: a.UserName, IdentityID: a.IdentityID}); err != nil {
		return "", err
	}
	if a.UserName == "" {
		return "", connectors.Errorf(connectors.Permanent, "memory: ensure: the account has no userName")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	acct, err := m.lookup(a)
	if err != nil {
		return "", err
	}
	if acct == nil {
		acct = &connectors.AccountState{Ref: m.newRef(a), UserName: a.UserName}
		m.accounts[acct.Ref] = acct
	}
	if acct.IdentityID == "" {
		acct.IdentityID = a.IdentityID
	}
	acct.Enabled = true
	return acct.Ref, nil
}

// FindAccount looks a's account up as EnsureAccount does, changing nothing.
func (m *Memory) FindAccount(ctx context.Context, a connectors.Account) (string, bool, error) {
	if err := m.begin(ctx, Call{Op: "find", UserName: a.UserName, IdentityID: a.IdentityID}); err != nil {
		return "", false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	acct, err := m.lookup(a)
	if connectors.IsNotFound(err) || (err != nil && isConflict(err)) || acct == nil {
		return "", false, nil // the userName's account is someone else's
	}
	if err != nil {
		return "", false, err
	}
	return acct.Ref, true, nil
}

func isConflict(err error) bool {
	c, _ := connectors.ClassOf(err)
	return c == connectors.Conflict
}

// DisableAccount disables ref; a missing account is nil.
func (m *Memory) DisableAccount(ctx context.Context, ref string) error {
	if err := m.begin(ctx, Call{Op: "disable", Ref: ref}); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.accounts[ref]; a != nil {
		a.Enabled = false
	}
	return nil
}

// Grant adds e to ref's entitlements; a missing account is NotFound.
func (m *Memory) Grant(ctx context.Context, ref, e string) error {
	if err := m.begin(ctx, Call{Op: "grant", Ref: ref, Entitlement: e}); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.accounts[ref]
	if a == nil {
		return connectors.Errorf(connectors.NotFound, "memory: grant %s: no account %s", e, ref)
	}
	if i, found := slices.BinarySearch(a.Entitlements, e); !found {
		a.Entitlements = slices.Insert(a.Entitlements, i, e)
	}
	return nil
}

// Revoke removes e from ref's entitlements; an entitlement or account that
// is not there is nil.
func (m *Memory) Revoke(ctx context.Context, ref, e string) error {
	if err := m.begin(ctx, Call{Op: "revoke", Ref: ref, Entitlement: e}); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.accounts[ref]; a != nil {
		a.Entitlements = slices.DeleteFunc(a.Entitlements, func(x string) bool { return x == e })
	}
	return nil
}

// RevokeSessions is recorded (op "revoke_sessions") and changes nothing:
// Memory keeps no sessions. A missing account is nil.
func (m *Memory) RevokeSessions(ctx context.Context, ref string) error {
	return m.begin(ctx, Call{Op: "revoke_sessions", Ref: ref})
}

// ListAccounts runs the OnList hook, counts the call, applies faults (key
// "list") and returns every account sorted by ref.
func (m *Memory) ListAccounts(ctx context.Context) ([]connectors.AccountState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: list: %w", err)
	}
	m.mu.Lock()
	hook := m.onList
	m.mu.Unlock()
	if hook != nil {
		hook()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lists++
	if err := m.fault("list", "list"); err != nil {
		return nil, err
	}
	return m.snapshot(), nil
}

// begin records c and decides its fate: a done ctx (not recorded), then
// the FailNext queue, then FailOn, then the OnCall hook.
func (m *Memory) begin(ctx context.Context, c Call) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: %s: %w", c.Op, err)
	}
	m.mu.Lock()
	if a := m.accounts[c.Ref]; c.Ref != "" && a != nil {
		c.UserName, c.IdentityID = a.UserName, a.IdentityID
	}
	s := c.String()
	m.calls = append(m.calls, s)
	err := m.fault(c.Op, s)
	hook := m.onCall
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if hook != nil {
		return hook(c)
	}
	return nil
}

// fault pops the queue and consults the keyed faults. m.mu is held.
func (m *Memory) fault(op, call string) error {
	if len(m.queue) > 0 {
		err := m.queue[0]
		m.queue = m.queue[1:]
		if err != nil {
			return err
		}
	}
	if err, ok := m.faults[call]; ok {
		return err
	}
	return m.faults[op]
}

// lookup finds a's account as EnsureAccount documents. m.mu is held.
func (m *Memory) lookup(a connectors.Account) (*connectors.AccountState, error) {
	var byName, byID *connectors.AccountState
	for _, ref := range slices.Sorted(maps.Keys(m.accounts)) {
		x := m.accounts[ref]
		if byName == nil && x.UserName == a.UserName {
			byName = x
		}
		if byID == nil && a.IdentityID != "" && x.IdentityID == a.IdentityID {
			byID = x
		}
	}
	switch {
	case byName != nil && (byName.IdentityID == "" || byName.IdentityID == a.IdentityID):
		return byName, nil
	case byID != nil:
		return byID, nil
	case byName != nil:
		return nil, connectors.Errorf(connectors.Conflict,
			"memory: ensure: userName %q is taken by account %s of identity %q", a.UserName, byName.Ref, byName.IdentityID)
	}
	return nil, nil
}

// newRef returns an unused ref for a new account of a. m.mu is held.
func (m *Memory) newRef(a connectors.Account) string {
	base := "ref-" + a.IdentityID
	if a.IdentityID == "" {
		base = "ref-" + a.UserName
	}
	ref := base
	for i := 2; m.accounts[ref] != nil; i++ {
		ref = fmt.Sprintf("%s-%d", base, i)
	}
	return ref
}

// snapshot copies every account, sorted by ref. m.mu is held.
func (m *Memory) snapshot() []connectors.AccountState {
	out := make([]connectors.AccountState, 0, len(m.accounts))
	for _, ref := range slices.Sorted(maps.Keys(m.accounts)) {
		out = append(out, clone(m.accounts[ref]))
	}
	return out
}

func clone(a *connectors.AccountState) connectors.AccountState {
	st := *a
	st.Entitlements = slices.Clone(a.Entitlements)
	return st
}
