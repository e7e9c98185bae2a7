// Package connectors is the contract between jmlgate and the applications it
// provisions. It is a leaf: it imports only the standard library, and every
// connector (connectors/scim, connectors/webhook, connectors/postgres, …)
// imports it and nothing of the others.
//
// A Connector makes one target match what jmlgate decided: an account exists
// or is disabled, an entitlement is granted or revoked. Every method is
// idempotent: calling it twice has the effect of calling it once, and the
// second call returns the same result. jmlgate's dispatcher relies on that
// to retry after a crash without knowing whether the first attempt landed.
//
// Failures are classified (see Error): the dispatcher decides whether to
// retry, wait or give up from the class alone, never from message text.
package connectors

import (
	"context"
	"log/slog"
)

// Account is the person a connector provisions, as jmlgate knows them. The
// identity's id is stable for life (rehires keep it); the other fields are
// copied from the SCIM user when the dispatcher runs.
type Account struct {
	// IdentityID is jmlgate's id of the identity. Connectors that can store
	// a foreign key (SCIM externalId, a comment on a database role) store
	// it, so that the account can be found again after a rename.
	IdentityID  string
	UserName    string
	DisplayName string
	GivenName   string
	FamilyName  string
	Email       string
}

// Connector is what every target implements.
//
// A ref is the target's own identifier of an account (a SCIM id, a role
// name); jmlgate stores the ref EnsureAccount returned and passes it back to
// the other methods. Entitlements are strings whose meaning belongs to the
// connector (for the SCIM connector "group:Engineering").
type Connector interface {
	// EnsureAccount makes sure an enabled account exists for a and returns
	// its ref. If the account exists (found by the connector's own lookup,
	// for example userName then externalId) it is re-enabled and its ref
	// returned; otherwise it is created.
	EnsureAccount(ctx context.Context, a Account) (ref string, err error)

	// DisableAccount disables the account so its owner can no longer sign
	// in. An account that does not exist is already disabled: nil.
	DisableAccount(ctx context.Context, ref string) error

	// Grant gives the account an entitlement; granting one it has is nil.
	Grant(ctx context.Context, ref, entitlement string) error

	// Revoke takes an entitlement away; revoking one it does not have, or
	// revoking from an account that no longer exists, is nil.
	Revoke(ctx context.Context, ref, entitlement string) error
}

// SessionRevoker is implemented by connectors that can end an account's live
// sessions (tokens, database connections). The dispatcher calls it after
// DisableAccount for leavers.
type SessionRevoker interface {
	RevokeSessions(ctx context.Context, ref string) error
}

// SecretRotator is implemented by connectors that hold shared accounts
// whose secret jmlgate rotates when someone who could read it leaves.
// account names the shared account in the target's own terms; secret is
// the new value, which the connector must not log or keep.
type SecretRotator interface {
	RotateSecret(ctx context.Context, account string, secret []byte) error
}

// Lister is implemented by connectors that can enumerate the target, which
// is what reconciliation needs to find access nobody granted through
// jmlgate.
type Lister interface {
	// ListAccounts returns every account the connector manages. The
	// result may be large; connectors page through the target internally.
	ListAccounts(ctx context.Context) ([]AccountState, error)
}

// AccountState is one account as the target reports it.
type AccountState struct {
	Ref        string
	UserName   string
	IdentityID string // "" when the target holds no jmlgate id for it
	Enabled    bool
	// Entitlements are in the same form Grant takes, sorted.
	Entitlements []string
}

// Config is a connector type's configuration section, decoded strictly from
// the YAML under `connectors[i].config`. Open validates it (reporting every
// problem at once) and builds the connector; it performs no I/O that could
// fail because a target is down: an unreachable target at start-up is a
// delivery problem, not a configuration problem.
type Config interface {
	Open(name string, log *slog.Logger) (Connector, error)
}

// Factory returns a new, zero-valued (or defaulted) Config for one
// connector type; the YAML section is decoded onto it. cmd/jmlgate builds
// the map from type name to Factory explicitly: there is no self
// registration.
type Factory func() Config

// Finder is implemented by connectors that can look an account up without
// creating or changing it. The dispatcher needs it after an EnsureAccount
// whose outcome is unknown (a timeout, a crash before the answer was
// recorded): the account may exist, and a leaver's must then be disabled,
// but calling EnsureAccount for a leaver would create or re-enable one.
type Finder interface {
	// FindAccount returns the ref of a's account, found the same way
	// EnsureAccount finds one, and found false (with a nil error) when the
	// target has none. It changes nothing. A connector that cannot tell
	// (a webhook receiver owns its accounts) reports found with the ref
	// the account has if it exists: disabling a missing account is a no-op.
	FindAccount(ctx context.Context, a Account) (ref string, found bool, err error)
}
