package workflows

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/workflows/roles"
)

// DefaultApprovalTTL is how long an approval request stays open.
const DefaultApprovalTTL = 7 * 24 * time.Hour

// Decision is one entry of an approval's history.
type Decision struct {
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Decision string    `json:"decision"` // approve, reject, expired, cancelled, closed
	Reason   string    `json:"reason,omitempty"`
}

// Approval errors; the HTTP layer maps them to statuses.
var (
	ErrApprovalNotFound  = errors.New("no such approval")
	ErrApprovalClosed    = errors.New("approval is not pending")
	ErrSelfApproval      = errors.New("approvers cannot decide on their own access")
	ErrAlreadyDecided    = errors.New("this approver already decided")
	ErrIdentityNotActive = errors.New("identity is not active")
	ErrReasonRequired    = errors.New("a rejection needs a reason")
)

func (e *Engine) approvalTTL() time.Duration {
	if e.ApprovalTTL > 0 {
		return e.ApprovalTTL
	}
	return DefaultApprovalTTL
}

func decisions(a *store.Approval) []Decision {
	var ds []Decision
	_ = json.Unmarshal(a.Decisions, &ds)
	return ds
}

func withDecision(a *store.Approval, d Decision, state string) *store.Approval {
	ds := append(decisions(a), d)
	b, _ := json.Marshal(ds)
	next := *a
	next.Decisions, next.Updated, next.Version = b, d.At, a.Version+1
	if state != "" {
		next.State = state
	}
	return &next
}

func (e *Engine) putApproval(ctx context.Context, tx store.Tx, a *store.Approval, action string, at time.Time) error {
	if err := tx.PutApproval(ctx, a); err != nil {
		return err
	}
	_, err := audit.Append(ctx, tx, at, audit.Entry{Actor: reqctx.Actor(ctx), Action: action,
		ResourceType: store.TypeIdentity, ResourceID: a.IdentityID, RequestID: reqctx.RequestID(ctx),
		After: map[string]any{"approval": a.ID, "role": a.Role, "state": a.State, "decisions": json.RawMessage(orEmpty(a.Decisions))}})
	return err
}

func orEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("[]")
	}
	return b
}

// syncApprovals keeps one open request per privileged role that applies to
// an active identity, and closes requests whose role no longer applies or
// whose identity is no longer active. A rejection or expiry stands while the
// role keeps applying; once the role stops applying, that episode is closed
// and a later match asks again. It returns the privileged roles approved.
func (e *Engine) syncApprovals(ctx context.Context, tx store.Tx, id, state string, matches []roles.Match, all []*store.Approval, now time.Time) (map[string]bool, error) {
	wanted := map[string]roles.Match{}
	if state == store.StateActive {
		for _, m := range matches {
			if m.Privileged {
				wanted[m.Role] = m
			}
		}
	}
	blocking := map[string]bool{} // roles with an open or standing request
	approved := map[string]bool{}
	for _, a := range all {
		_, applies := wanted[a.Role]
		switch {
		case (a.State == store.ApprovalPending || a.State == store.ApprovalApproved) && !applies:
			reason := "role no longer applies"
			if state != store.StateActive {
				reason = "identity is " + state
			}
			next := withDecision(a, Decision{By: "jmlgate", At: now, Decision: "cancelled", Reason: reason}, store.ApprovalCancelled)
			if err := e.putApproval(ctx, tx, next, "approval.cancel", now); err != nil {
				return nil, err
			}
		case (a.State == store.ApprovalRejected || a.State == store.ApprovalExpired) && !closed(a):
			if applies {
				blocking[a.Role] = true // the decision stands while the role applies
				continue
			}
			next := withDecision(a, Decision{By: "jmlgate", At: now, Decision: "closed", Reason: "role no longer applies"}, "")
			if err := e.putApproval(ctx, tx, next, "approval.close", now); err != nil {
				return nil, err
			}
		case a.State == store.ApprovalPending:
			blocking[a.Role] = true
		case a.State == store.ApprovalApproved:
			blocking[a.Role] = true
			approved[a.Role] = true
		}
	}
	for role, m := range wanted {
		if blocking[role] {
			continue
		}
		grants, _ := json.Marshal(m.Grants)
		required := max(m.ApprovalsRequired, 1)
		a := &store.Approval{ID: newApprovalID(), IdentityID: id, Role: role, Grants: grants, Required: required,
			State: store.ApprovalPending, RequestedAt: now, ExpiresAt: now.Add(e.approvalTTL()), Updated: now, Version: 1}
		if err := e.putApproval(ctx, tx, a, "approval.request", now); err != nil {
			return nil, err
		}
	}
	return approved, nil
}

func closed(a *store.Approval) bool {
	for _, d := range decisions(a) {
		if d.Decision == "closed" {
			return true
		}
	}
	return false
}

// Decide records approver's decision ("approve" or "reject") on approval
// id inside tx. Refused: unknown approval, one not pending (or expired by
// now, which is recorded), an identity no longer active, an approver who is
// the identity itself (by userName or email), and an approver deciding
// twice. Enough distinct approvals approve it; one rejection rejects it.
// The identity's desired access is re-evaluated in the same transaction.
func (e *Engine) Decide(ctx context.Context, tx store.Tx, approvalID, approver, decision, reason string) (*store.Approval, error) {
	now := e.Now().UTC()
	a, err := tx.GetApproval(ctx, approvalID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrApprovalNotFound
	}
	if err != nil {
		return nil, err
	}
	if a.State == store.ApprovalPending && !now.Before(a.ExpiresAt) {
		if err := e.expire(ctx, tx, a, now); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: it expired at %s", ErrApprovalClosed, a.ExpiresAt.Format(time.RFC3339))
	}
	if a.State != store.ApprovalPending {
		return nil, fmt.Errorf("%w: it is %s", ErrApprovalClosed, a.State)
	}
	idn, err := tx.GetIdentity(ctx, a.IdentityID)
	if err != nil {
		return nil, err
	}
	if idn.State != store.StateActive {
		return nil, fmt.Errorf("%w: it is %s", ErrIdentityNotActive, idn.State)
	}
	if IsSubject(ctx, tx, idn, approver) {
		return nil, ErrSelfApproval
	}
	for _, d := range decisions(a) {
		if strings.EqualFold(d.By, approver) && (d.Decision == "approve" || d.Decision == "reject") {
			return nil, ErrAlreadyDecided
		}
	}
	state := ""
	switch decision {
	case "reject":
		if strings.TrimSpace(reason) == "" {
			return nil, ErrReasonRequired
		}
		state = store.ApprovalRejected
	case "approve":
		n := 1
		for _, d := range decisions(a) {
			if d.Decision == "approve" {
				n++
			}
		}
		if n >= a.Required {
			state = store.ApprovalApproved
		}
	default:
		return nil, fmt.Errorf("unknown decision %q", decision)
	}
	next := withDecision(a, Decision{By: approver, At: now, Decision: decision, Reason: reason}, state)
	if err := e.putApproval(ctx, tx, next, "approval."+decision, now); err != nil {
		return nil, err
	}
	return next, e.apply(ctx, tx, a.IdentityID, now)
}

// IsSubject reports whether a caller names the identity itself (a token
// name or "jwt:<sub>" against its userName and emails, case-insensitively):
// the separation-of-duties test for approvals and MFA exceptions.
func IsSubject(ctx context.Context, tx store.ReadTx, idn *store.Identity, approver string) bool {
	who := strings.ToLower(strings.TrimPrefix(approver, "jwt:"))
	names := []string{idn.UserName}
	if res, err := tx.GetResource(ctx, store.TypeUser, idn.ID); err == nil {
		var doc struct {
			Emails []struct {
				Value string `json:"value"`
			} `json:"emails"`
		}
		if json.Unmarshal(res.Data, &doc) == nil {
			for _, e := range doc.Emails {
				names = append(names, e.Value)
			}
		}
	}
	for _, n := range names {
		if n != "" && strings.ToLower(n) == who {
			return true
		}
	}
	return false
}

func (e *Engine) expire(ctx context.Context, tx store.Tx, a *store.Approval, now time.Time) error {
	next := withDecision(a, Decision{By: "jmlgate", At: now, Decision: "expired"}, store.ApprovalExpired)
	return e.putApproval(ctx, tx, next, "approval.expire", now)
}

// expireApprovals expires every pending approval whose time is up.
func (e *Engine) expireApprovals(ctx context.Context, tx store.Tx, now time.Time) (int, error) {
	pending, err := tx.Approvals(ctx, store.ApprovalQuery{State: store.ApprovalPending})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range pending {
		if !now.Before(a.ExpiresAt) {
			if err := e.expire(ctx, tx, a, now); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func newApprovalID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "apr_" + hex.EncodeToString(b[:])
}
