package workflows

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
)

// TOTP parameters: RFC 6238 defaults every authenticator app supports.
const (
	totpPeriod = 30 // seconds per step
	totpSkew   = 1  // steps accepted either side of now
	// maxFailures rejected codes in a row lock verification; each further
	// failure doubles the lock, up to maxLock.
	maxFailures = 5
	firstLock   = time.Minute
	maxLock     = time.Hour
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Sealer keeps TOTP secrets encrypted at rest (internal/secrets.Vault).
type Sealer interface {
	Seal(plaintext []byte, context string) (string, error)
	Unseal(sealed, context string) ([]byte, error)
}

// MFA errors; the HTTP layer maps them to statuses.
var (
	ErrNoIdentity     = errors.New("no such identity")
	ErrNotEnrollable  = errors.New("identity cannot enrol now")
	ErrNotEnrolled    = errors.New("no TOTP enrollment has begun")
	ErrInvalidCode    = errors.New("code rejected")
	ErrCodeReused     = errors.New("code already used")
	ErrLockedOut      = errors.New("verification locked after repeated failures")
	ErrMalformedCode  = errors.New("code must be 6 digits")
	sealContextPrefix = "totp:"
)

// LockedError says until when verification is locked.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return ErrLockedOut.Error() + " until " + e.Until.Format(time.RFC3339)
}
func (e *LockedError) Unwrap() error { return ErrLockedOut }

// MFA runs built-in TOTP enrollment (RFC 6238). Proof of enrollment makes an
// awaiting_mfa identity active: the only way any identity becomes active.
type MFA struct {
	Engine *Engine
	Store  store.Store
	Vault  Sealer
	Issuer string // shown by authenticator apps; default "jmlgate"
}

// BeginTOTP starts (or restarts) enrollment for identity id and returns the
// otpauth:// URI to show the person once. The secret is sealed before it is
// stored and never returned again. Only a pre_hire or awaiting_mfa identity
// without a verified enrollment may enrol (ErrNotEnrollable): replacing a
// working authenticator through this API would let its caller take over.
func (m *MFA) BeginTOTP(ctx context.Context, id string) (string, error) {
	ctx = context.WithoutCancel(ctx)
	now := m.Engine.Now().UTC()
	var uri string
	err := m.Store.Update(ctx, func(tx store.Tx) error {
		idn, err := tx.GetIdentity(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNoIdentity
		}
		if err != nil {
			return err
		}
		if idn.State != store.StatePreHire && idn.State != store.StateAwaitingMFA {
			return fmt.Errorf("%w: identity is %s", ErrNotEnrollable, idn.State)
		}
		prev, err := tx.GetTOTP(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			prev = nil
		case err != nil:
			return err
		case !prev.Verified.IsZero():
			return fmt.Errorf("%w: a verified authenticator exists", ErrNotEnrollable)
		}
		issuer := m.Issuer
		if issuer == "" {
			issuer = "jmlgate"
		}
		key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: idn.UserName, Period: totpPeriod,
			Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return err
		}
		sealed, err := m.Vault.Seal([]byte(key.Secret()), sealContextPrefix+id)
		if err != nil {
			return fmt.Errorf("seal TOTP secret: %w", err)
		}
		e := &store.TOTPEnrollment{IdentityID: id, Secret: sealed, Created: now, Version: 1}
		if prev != nil {
			e.Version = prev.Version + 1
		}
		if err := tx.PutTOTP(ctx, e); err != nil {
			return err
		}
		uri = key.URL()
		_, err = audit.Append(ctx, tx, now, audit.Entry{Actor: reqctx.Actor(ctx), Action: "mfa.totp.begin",
			ResourceType: store.TypeIdentity, ResourceID: id, RequestID: reqctx.RequestID(ctx)})
		return err
	})
	return uri, err
}

// VerifyTOTP checks code against id's enrollment. A code is accepted once
// (its time step must be later than the last accepted one) within one step
// of now. Every rejection is counted and audited; after maxFailures in a row
// verification locks, for a time that doubles with each further failure
// (*LockedError). The first accepted code proves enrollment: the identity
// records it and, if it was awaiting MFA, becomes active, in the same
// transaction.
func (m *MFA) VerifyTOTP(ctx context.Context, id, code string) error {
	if len(code) != 6 || !allDigits(code) {
		return ErrMalformedCode
	}
	ctx = context.WithoutCancel(ctx)
	now := m.Engine.Now().UTC()
	var verdict error
	err := m.Store.Update(ctx, func(tx store.Tx) error {
		e, err := tx.GetTOTP(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNotEnrolled
		}
		if err != nil {
			return err
		}
		if now.Before(e.LockedUntil) {
			return &LockedError{Until: e.LockedUntil}
		}
		secret, err := m.Vault.Unseal(e.Secret, sealContextPrefix+id)
		if err != nil {
			return fmt.Errorf("open TOTP secret: %w", err)
		}
		step, ok, err := matchStep(string(secret), code, now)
		if err != nil {
			return err
		}
		next := *e
		next.Version = e.Version + 1
		action := "mfa.totp.verify"
		switch {
		case ok && step <= e.LastStep:
			verdict = ErrCodeReused
		case !ok:
			verdict = ErrInvalidCode
		}
		if verdict != nil {
			action = "mfa.totp.reject"
			next.Failures++
			if next.Failures >= maxFailures {
				lock := firstLock << (next.Failures - maxFailures)
				if lock > maxLock || lock <= 0 {
					lock = maxLock
				}
				next.LockedUntil = now.Add(lock)
			}
		} else {
			next.Failures, next.LockedUntil, next.LastStep = 0, time.Time{}, step
			if next.Verified.IsZero() {
				next.Verified = now
			}
		}
		if err := tx.PutTOTP(ctx, &next); err != nil {
			return err
		}
		if _, err := audit.Append(ctx, tx, now, audit.Entry{Actor: reqctx.Actor(ctx), Action: action,
			ResourceType: store.TypeIdentity, ResourceID: id, RequestID: reqctx.RequestID(ctx)}); err != nil {
			return err
		}
		if verdict != nil {
			return nil // commit the counted failure; report it below
		}
		if !e.Verified.IsZero() {
			return nil // enrollment was proven by an earlier code
		}
		return m.Engine.MFAProven(ctx, tx, id, "totp", now)
	})
	if err != nil {
		return err
	}
	return verdict
}

// matchStep finds the time step within ±totpSkew of now whose code is code.
func matchStep(secret, code string, now time.Time) (int64, bool, error) {
	cur := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		step := cur + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true, nil
		}
	}
	return 0, false, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// MFAProven records proven MFA enrollment by method for identity id inside
// tx ("lifecycle.mfa"), then runs the lifecycle rules, which open the gate:
// an awaiting_mfa identity becomes active ("lifecycle.activate"), its
// grants are queued for delivery and privileged ones for approval. Proven
// MFA and a live exception are the only ways into active; the state change
// itself is always evaluate's, so nothing bypasses delivery.
func (e *Engine) MFAProven(ctx context.Context, tx store.Tx, id, method string, at time.Time) error {
	prev, err := tx.GetIdentity(ctx, id)
	if err != nil {
		return err
	}
	next := *prev
	next.MFAMethod, next.MFAEnrolledAt = method, at
	next.Version, next.Updated = prev.Version+1, at
	if err := tx.PutIdentity(ctx, &next); err != nil {
		return err
	}
	if _, err := audit.Append(ctx, tx, at, audit.Entry{Actor: reqctx.Actor(ctx), Action: "lifecycle.mfa",
		ResourceType: store.TypeIdentity, ResourceID: id, RequestID: reqctx.RequestID(ctx),
		Before: summary(prev), After: summary(&next)}); err != nil {
		return err
	}
	return e.apply(ctx, tx, id, at)
}

// MFARevoked records that identity id no longer has any MFA credential
// (e.g. an IdP reported the last one deleted), inside tx: the MFA status
// and any built-in TOTP enrollment are cleared, and the lifecycle rules run
// again, so an active identity without a live exception goes back to
// awaiting MFA. Audited as "lifecycle.mfa_revoked" (then the state change).
func (e *Engine) MFARevoked(ctx context.Context, tx store.Tx, id string, at time.Time) error {
	prev, err := tx.GetIdentity(ctx, id)
	if err != nil {
		return err
	}
	if prev.MFAMethod == "" {
		return nil
	}
	next := *prev
	next.MFAMethod, next.MFAEnrolledAt = "", time.Time{}
	next.Version, next.Updated = prev.Version+1, at
	if err := tx.PutIdentity(ctx, &next); err != nil {
		return err
	}
	if err := tx.DeleteTOTP(ctx, id); err != nil {
		return err
	}
	if _, err := audit.Append(ctx, tx, at, audit.Entry{Actor: reqctx.Actor(ctx), Action: "lifecycle.mfa_revoked",
		ResourceType: store.TypeIdentity, ResourceID: id, RequestID: reqctx.RequestID(ctx),
		Before: summary(prev), After: summary(&next)}); err != nil {
		return err
	}
	return e.apply(ctx, tx, id, at)
}
