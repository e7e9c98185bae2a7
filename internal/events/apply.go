package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
)

// CredentialChange is the CAEP credential-change event type URI.
const CredentialChange = "https://schemas.openid.net/secevent/caep/event-type/credential-change"

// mfaCredentialTypes are the CAEP credential types that are a second
// factor. password and pin are not; neither is verifiable-credential.
var mfaCredentialTypes = map[string]bool{
	"fido2-platform": true,
	"fido2-roaming":  true,
	"fido-u2f":       true,
	"app":            true,
	"phone-voice":    true,
	"phone-sms":      true,
	"x509":           true,
}

// IsMFACredential reports whether a CAEP credential_type proves MFA.
func IsMFACredential(credentialType string) bool { return mfaCredentialTypes[credentialType] }

// Change types of a credential-change event.
const (
	changeCreate = "create"
	changeUpdate = "update"
	changeDelete = "delete"
	changeRevoke = "revoke"
)

// credentialChange is the payload of a CAEP credential-change event; the
// fields jmlgate does not use (friendly_name, x509_*, fido2_aaguid, ...)
// are ignored.
type credentialChange struct {
	CredentialType string          `json:"credential_type"`
	ChangeType     string          `json:"change_type"`
	Subject        json.RawMessage `json:"subject"`
}

// outcome says what one SET did, for the log.
type outcome struct {
	action   string // "proven", "revoked", or "ignored"
	reason   string // why ignored
	format   string // subject format
	subject  string // subject identifier, logged at debug only
	matched  []string
	credType string
	change   string
}

// apply interprets a verified SET and records it: its jti, and for a
// credential-change of an MFA credential, the identity changes and their
// audit records, in ONE transaction. The subject is resolved first, in a
// read snapshot, so a scan of users does not hold the writer.
func (r *Receiver) apply(ctx context.Context, set *verifiedSET, now time.Time) error {
	ctx = context.WithoutCancel(ctx) // the audit write does not die with the client
	ctx = reqctx.WithActor(ctx, "set:"+set.iss.name)
	out, err := r.plan(ctx, set)
	if err != nil {
		return err
	}
	var changed []string
	err = r.Store.Update(ctx, func(tx store.Tx) error {
		changed = nil
		// The jti is kept while the SET's iat is acceptable; after that
		// checkClaims refuses a replay by itself. The store compares the
		// expiry with its wall clock, as Engine.Now is in production.
		expires := set.iat.Add(set.iss.maxAge).Add(time.Second)
		if err := tx.RecordSETJTI(ctx, set.iss.name, set.jti, expires); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return refuse(ErrInvalidRequest, "replayed jti %q", clip(set.jti))
			}
			return err
		}
		if out.action == "ignored" {
			return nil
		}
		for _, id := range out.matched {
			did, err := r.change(ctx, tx, out, id, now)
			if err != nil {
				return fmt.Errorf("identity %q: %w", id, err)
			}
			if did {
				changed = append(changed, id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	out.matched = changed
	log := r.log().With("iss", set.iss.name, "jti", set.jti, "request_id", reqctx.RequestID(ctx))
	if out.action == "ignored" {
		log.InfoContext(ctx, "events: SET accepted, nothing to do", "reason", out.reason,
			"credential_type", out.credType, "change_type", out.change, "subject_format", out.format)
		log.DebugContext(ctx, "events: ignored SET subject", "subject", out.subject)
		return nil
	}
	log.InfoContext(ctx, "events: SET applied", "mfa", out.action, "identities", out.matched,
		"credential_type", out.credType, "change_type", out.change)
	return nil
}

// plan reads the event and resolves its subject; it writes nothing. An
// event payload that does not conform is a *setError invalid_request.
func (r *Receiver) plan(ctx context.Context, set *verifiedSET) (*outcome, error) {
	raw, ok := set.events[CredentialChange]
	if !ok {
		return &outcome{action: "ignored", reason: "no credential-change event"}, nil
	}
	var ev credentialChange
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, refuse(ErrInvalidRequest, "credential-change event: %v", err)
	}
	out := &outcome{credType: ev.CredentialType, change: ev.ChangeType}
	switch {
	case ev.CredentialType == "":
		return nil, refuse(ErrInvalidRequest, "credential-change event: credential_type is required")
	case ev.ChangeType == "":
		return nil, refuse(ErrInvalidRequest, "credential-change event: change_type is required")
	}
	switch ev.ChangeType {
	case changeCreate, changeUpdate:
		out.action = "proven"
	case changeDelete, changeRevoke:
		out.action = "revoked"
	default:
		return nil, refuse(ErrInvalidRequest, "credential-change event: unknown change_type %q (want create, update, delete, revoke)",
			clip(ev.ChangeType))
	}
	subjectJSON := ev.Subject
	if len(subjectJSON) == 0 || string(subjectJSON) == "null" {
		subjectJSON = set.subID
	}
	if len(subjectJSON) == 0 || string(subjectJSON) == "null" {
		return nil, refuse(ErrInvalidRequest, "no subject: want the event's subject or a sub_id claim")
	}
	subs, format, err := parseSubject(subjectJSON)
	if err != nil {
		return nil, err
	}
	out.format = format
	out.subject = describeSubjects(subs)
	if !IsMFACredential(ev.CredentialType) {
		out.action, out.reason = "ignored", "credential type is not a second factor"
		return out, nil
	}
	if len(subs) == 0 {
		out.action, out.reason = "ignored", "unsupported subject format"
		return out, nil
	}
	var ids []string
	err = r.Store.View(ctx, func(tx store.ReadTx) error {
		var err error
		ids, err = resolve(ctx, tx, subs)
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case len(ids) == 0:
		out.action, out.reason = "ignored", "subject matches no user"
	case len(ids) > 1 && out.action == "proven":
		// Proving MFA for the wrong person opens their gate; refuse to
		// guess. Revocation of every match fails closed instead.
		out.action, out.reason = "ignored", fmt.Sprintf("subject matches %d users", len(ids))
	}
	out.matched = ids
	return out, nil
}

// change applies the planned MFA change to identity id inside tx and
// reports whether anything was written.
func (r *Receiver) change(ctx context.Context, tx store.Tx, out *outcome, id string, now time.Time) (bool, error) {
	idn, err := tx.GetIdentity(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // a user the engine does not track
	}
	if err != nil {
		return false, err
	}
	if out.action == "revoked" {
		if idn.MFAMethod == "" {
			return false, nil
		}
		return true, r.Engine.MFARevoked(ctx, tx, id, now)
	}
	switch {
	case idn.State != store.StatePreHire && idn.State != store.StateAwaitingMFA && idn.State != store.StateActive:
		return false, nil // a leaver's enrollment is not recorded
	case idn.MFAMethod != "":
		return false, nil // the first proof stands
	}
	return true, r.Engine.MFAProven(ctx, tx, id, "set:"+out.credType, now)
}

func describeSubjects(subs []subject) string {
	s := make([]string, len(subs))
	for i, sub := range subs {
		s[i] = sub.String()
	}
	return strings.Join(s, ", ")
}
