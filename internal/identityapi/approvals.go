package identityapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jmlgate/jmlgate/internal/apijson"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/workflows"
)

// ApprovalsPrefix is where approvals of privileged grants are served.
const ApprovalsPrefix = "/api/v1/approvals"

// ApprovalJSON is an approval as the API shows it.
type ApprovalJSON struct {
	ID          string               `json:"id"`
	Identity    string               `json:"identity"`
	Role        string               `json:"role"`
	Grants      json.RawMessage      `json:"grants"`
	Required    int                  `json:"approvals_required"`
	State       string               `json:"state"`
	RequestedAt time.Time            `json:"requested_at"`
	ExpiresAt   time.Time            `json:"expires_at"`
	Decisions   []workflows.Decision `json:"decisions"`
}

func approvalJSON(a *store.Approval) ApprovalJSON {
	ds := []workflows.Decision{}
	_ = json.Unmarshal(a.Decisions, &ds)
	return ApprovalJSON{ID: a.ID, Identity: a.IdentityID, Role: a.Role, Grants: json.RawMessage(orEmptyList(a.Grants)),
		Required: a.Required, State: a.State, RequestedAt: a.RequestedAt.UTC(), ExpiresAt: a.ExpiresAt.UTC(), Decisions: ds}
}

func orEmptyList(b []byte) []byte {
	if len(b) == 0 {
		return []byte("[]")
	}
	return b
}

// Approvals serves
//   - GET /api/v1/approvals?state=pending&identity= and GET /{id};
//   - POST /{id}/approve {"reason"?} and POST /{id}/reject {"reason"}:
//     the caller's decision, under separation of duties (403 for the
//     identity itself), once per approver (409), only while pending and
//     unexpired and the identity is active (409).
//
// Each decision, its audit record and the identity's re-evaluated desired
// access commit in one transaction.
func ApprovalsHandler(st store.Store, engine *workflows.Engine, log *slog.Logger) http.Handler {
	h := newHandler(st, log)
	mux := http.NewServeMux()
	mux.HandleFunc(ApprovalsPrefix, h.api.Serve(http.MethodGet, func(r *http.Request) (any, error) {
		q := store.ApprovalQuery{State: r.URL.Query().Get("state"), IdentityID: r.URL.Query().Get("identity")}
		switch q.State {
		case "", store.ApprovalPending, store.ApprovalApproved, store.ApprovalRejected, store.ApprovalExpired, store.ApprovalCancelled:
		default:
			return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "unknown state %q", q.State)
		}
		out := []ApprovalJSON{}
		err := st.View(r.Context(), func(tx store.ReadTx) error {
			as, err := tx.Approvals(r.Context(), q)
			for _, a := range as {
				out = append(out, approvalJSON(a))
			}
			return err
		})
		return map[string]any{"approvals": out}, err
	}))
	mux.HandleFunc(ApprovalsPrefix+"/{id}", h.api.Serve(http.MethodGet, func(r *http.Request) (any, error) {
		var a *store.Approval
		err := st.View(r.Context(), func(tx store.ReadTx) error {
			var err error
			a, err = tx.GetApproval(r.Context(), r.PathValue("id"))
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil, apijson.Errorf(http.StatusNotFound, CodeNotFound, "no approval %q", r.PathValue("id"))
		}
		if err != nil {
			return nil, err
		}
		return approvalJSON(a), nil
	}))
	decide := func(decision string) http.HandlerFunc {
		return h.api.ServeStatus(http.MethodPost, http.StatusOK, func(r *http.Request) (any, error) {
			var req struct {
				Reason string `json:"reason"`
			}
			b, err := io.ReadAll(io.LimitReader(r.Body, 16<<10))
			if err != nil {
				return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "reading body: %v", err)
			}
			if len(bytes.TrimSpace(b)) > 0 {
				d := json.NewDecoder(bytes.NewReader(b))
				d.DisallowUnknownFields()
				if err := d.Decode(&req); err != nil {
					return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, `body must be {"reason": "..."}: %v`, err)
				}
			}
			ctx := context.WithoutCancel(r.Context())
			var a *store.Approval
			err = st.Update(ctx, func(tx store.Tx) error {
				var err error
				a, err = engine.Decide(ctx, tx, r.PathValue("id"), reqctx.Actor(ctx), decision, req.Reason)
				if errors.Is(err, workflows.ErrApprovalClosed) {
					// An expiry found here is recorded: commit, report below.
					return nil
				}
				return err
			})
			switch {
			case err == nil && a == nil:
				return nil, apijson.Errorf(http.StatusConflict, apijson.CodeConflict, "approval %q is no longer pending", r.PathValue("id"))
			case err != nil:
				return nil, approvalError(err)
			}
			return approvalJSON(a), nil
		})
	}
	mux.HandleFunc(ApprovalsPrefix+"/{id}/approve", decide("approve"))
	mux.HandleFunc(ApprovalsPrefix+"/{id}/reject", decide("reject"))
	return mux
}

func approvalError(err error) error {
	switch {
	case errors.Is(err, workflows.ErrApprovalNotFound):
		return apijson.Errorf(http.StatusNotFound, CodeNotFound, "%v", err)
	case errors.Is(err, workflows.ErrSelfApproval):
		return apijson.Errorf(http.StatusForbidden, apijson.CodeForbidden, "%v", err)
	case errors.Is(err, workflows.ErrAlreadyDecided), errors.Is(err, workflows.ErrIdentityNotActive), errors.Is(err, workflows.ErrApprovalClosed):
		return apijson.Errorf(http.StatusConflict, apijson.CodeConflict, "%v", err)
	case errors.Is(err, workflows.ErrReasonRequired):
		return apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "%v", err)
	}
	return err
}
