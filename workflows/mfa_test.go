package workflows_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/secrets"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/workflows"
)

func (e *env) mfa() *workflows.MFA {
	e.t.Helper()
	v, err := secrets.Open(filepath.Join(e.t.TempDir(), "jmlgate.key"))
	if err != nil {
		e.t.Fatal(err)
	}
	return &workflows.MFA{Engine: e.engine, Store: e.st, Vault: v}
}

// code computes the authenticator app's code at t from the otpauth URI.
func code(t *testing.T, uri string, at time.Time) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := totp.GenerateCodeCustom(u.Query().Get("secret"), at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) enrollment(id string) *store.TOTPEnrollment {
	e.t.Helper()
	var got *store.TOTPEnrollment
	err := e.st.View(context.Background(), func(tx store.ReadTx) error {
		var err error
		got, err = tx.GetTOTP(context.Background(), id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

func TestTOTPActivatesOnlyWithAValidCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRoles)
	m := e.mfa()
	ctx := reqctx.WithActor(context.Background(), "helpdesk")
	_, body := e.do("POST", "/Users", user("ada@example.com", true, nil))
	id := body["id"].(string)

	uri, err := m.BeginTOTP(ctx, id)
	if err != nil || !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, "ada@example.com") {
		t.Fatalf("begin: %q %v", uri, err)
	}
	secret, _ := url.Parse(uri)
	if sealed := e.enrollment(id).Secret; strings.Contains(sealed, secret.Query().Get("secret")) || strings.Count(sealed, ".") != 4 {
		t.Fatalf("stored secret is not a sealed JWE: %q", sealed)
	}
	if st := e.identity(id).State; st != store.StateAwaitingMFA {
		t.Fatalf("state before verification: %s", st)
	}

	now := e.clock.now()
	if err := m.VerifyTOTP(ctx, id, "12345"); !errors.Is(err, workflows.ErrMalformedCode) {
		t.Fatalf("malformed code: %v", err)
	}
	if err := m.VerifyTOTP(ctx, id, code(t, uri, now.Add(-90*time.Second))); !errors.Is(err, workflows.ErrInvalidCode) {
		t.Fatalf("code three steps old: %v", err)
	}
	if st := e.identity(id).State; st != store.StateAwaitingMFA {
		t.Fatalf("a rejected code changed the state to %s", st)
	}
	good := code(t, uri, now.Add(-30*time.Second)) // one step of skew
	if err := m.VerifyTOTP(ctx, id, good); err != nil {
		t.Fatalf("valid code: %v", err)
	}
	idn := e.identity(id)
	if idn.State != store.StateActive || idn.MFAMethod != "totp" || !idn.MFAEnrolledAt.Equal(now) {
		t.Fatalf("after verification: %+v", idn)
	}
	if err := m.VerifyTOTP(ctx, id, good); !errors.Is(err, workflows.ErrCodeReused) {
		t.Fatalf("replayed code: %v", err)
	}
	// A later code is accepted but proves nothing new: enrolled_at stays.
	e.clock.advance(time.Minute)
	if err := m.VerifyTOTP(ctx, id, code(t, uri, e.clock.now())); err != nil {
		t.Fatalf("later code: %v", err)
	}
	if idn := e.identity(id); !idn.MFAEnrolledAt.Equal(now) {
		t.Fatalf("a later code moved the enrollment time: %+v", idn)
	}
	if acts := strings.Join(e.lifecycleActions(id), ","); strings.Count(acts, "lifecycle.mfa ") != 1 {
		t.Fatalf("want exactly one lifecycle.mfa record (the first proof), a later code adds none: %s", acts)
	}
	if _, err := m.BeginTOTP(ctx, id); !errors.Is(err, workflows.ErrNotEnrollable) {
		t.Fatalf("re-enrolling over a verified authenticator: %v", err)
	}
	acts := e.lifecycleActions(id)
	if !strings.Contains(strings.Join(acts, ","), "mfa.totp.reject by helpdesk,mfa.totp.verify by helpdesk,lifecycle.mfa by helpdesk,lifecycle.activate by helpdesk") {
		t.Fatalf("no activation record: %v", acts)
	}

	// A leaver loses the enrollment; a rehire must enrol afresh.
	e.do("PATCH", "/Users/"+id, patchActive(false))
	if e.enrollment(id) != nil || e.identity(id).MFAMethod != "" {
		t.Fatal("leaver kept an MFA enrollment")
	}
	e.do("PATCH", "/Users/"+id, patchActive(true))
	if idn := e.identity(id); idn.State != store.StateAwaitingMFA {
		t.Fatalf("rehire: %s", idn.State)
	}
	if err := m.VerifyTOTP(ctx, id, code(t, uri, e.clock.now())); !errors.Is(err, workflows.ErrNotEnrolled) {
		t.Fatalf("old authenticator after rehire: %v", err)
	}
}

func TestTOTPLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRoles)
	m := e.mfa()
	ctx := context.Background()
	_, body := e.do("POST", "/Users", user("bo@example.com", true, nil))
	id := body["id"].(string)
	uri, err := m.BeginTOTP(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	wrong := func() string {
		c := code(t, uri, e.clock.now())
		if c == "000000" {
			return "111111"
		}
		return "000000"
	}
	for i := 1; i <= 5; i++ {
		if err := m.VerifyTOTP(ctx, id, wrong()); !errors.Is(err, workflows.ErrInvalidCode) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	var le *workflows.LockedError
	if err := m.VerifyTOTP(ctx, id, code(t, uri, e.clock.now())); !errors.As(err, &le) || !le.Until.Equal(e.clock.now().Add(time.Minute)) {
		t.Fatalf("after five failures even a good code must be locked out for 1m: %v", err)
	}
	e.clock.advance(61 * time.Second)
	if err := m.VerifyTOTP(ctx, id, wrong()); !errors.Is(err, workflows.ErrInvalidCode) {
		t.Fatalf("sixth failure: %v", err)
	}
	if err := m.VerifyTOTP(ctx, id, code(t, uri, e.clock.now())); !errors.As(err, &le) || !le.Until.Equal(e.clock.now().Add(2*time.Minute)) {
		t.Fatalf("the lock must double: %v", err)
	}
	e.clock.advance(121 * time.Second)
	if err := m.VerifyTOTP(ctx, id, code(t, uri, e.clock.now())); err != nil {
		t.Fatalf("good code after the lock: %v", err)
	}
	if en := e.enrollment(id); en.Failures != 0 || !en.LockedUntil.IsZero() {
		t.Fatalf("success did not reset the counter: %+v", en)
	}
}

// MFA proven before the start date carries over: the new hire is active on
// day one without enrolling again.
func TestPreHireEnrolment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRoles)
	m := e.mfa()
	ctx := context.Background()
	start := e.clock.now().Add(24 * time.Hour)
	_, body := e.do("POST", "/Users", user("cy@example.com", true, map[string]any{"startDate": start.Format(time.RFC3339)}))
	id := body["id"].(string)
	uri, err := m.BeginTOTP(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.VerifyTOTP(ctx, id, code(t, uri, e.clock.now())); err != nil {
		t.Fatal(err)
	}
	if idn := e.identity(id); idn.State != store.StatePreHire || idn.MFAMethod != "totp" {
		t.Fatalf("pre-hire after enrolment: %+v", idn)
	}
	e.clock.advance(25 * time.Hour)
	if _, err := e.engine.Tick(ctx, e.st); err != nil {
		t.Fatal(err)
	}
	if st := e.identity(id).State; st != store.StateActive {
		t.Fatalf("on the start date: %s", st)
	}
}

func TestTOTPRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRoles)
	m := e.mfa()
	ctx := context.Background()
	if _, err := m.BeginTOTP(ctx, "nobody"); !errors.Is(err, workflows.ErrNoIdentity) {
		t.Fatalf("unknown identity: %v", err)
	}
	_, body := e.do("POST", "/Users", user("dee@example.com", true, nil))
	id := body["id"].(string)
	if err := m.VerifyTOTP(ctx, id, "123456"); !errors.Is(err, workflows.ErrNotEnrolled) {
		t.Fatalf("verify before begin: %v", err)
	}
	e.do("PATCH", "/Users/"+id, patchActive(false))
	if _, err := m.BeginTOTP(ctx, id); !errors.Is(err, workflows.ErrNotEnrollable) {
		t.Fatalf("leaver enrolling: %v", err)
	}
}

func TestMFARevokedClosesTheGate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRoles)
	m := e.mfa()
	ctx := reqctx.WithActor(context.Background(), "idp-events")
	_, body := e.do("POST", "/Users", user("fay@example.com", true, nil))
	id := body["id"].(string)
	uri, _ := m.BeginTOTP(ctx, id)
	if err := m.VerifyTOTP(ctx, id, code(t, uri, e.clock.now())); err != nil {
		t.Fatal(err)
	}
	err := e.st.Update(ctx, func(tx store.Tx) error { return e.engine.MFARevoked(ctx, tx, id, e.clock.now()) })
	if err != nil {
		t.Fatal(err)
	}
	idn := e.identity(id)
	if idn.State != store.StateAwaitingMFA || idn.MFAMethod != "" || e.enrollment(id) != nil {
		t.Fatalf("after revocation: %+v", idn)
	}
	acts := strings.Join(e.lifecycleActions(id), ",")
	if !strings.Contains(acts, "lifecycle.mfa_revoked by idp-events,lifecycle.deactivate by idp-events") {
		t.Fatalf("records: %s", acts)
	}
}
