package identityapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/internal/apijson"
	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/workflows"
)

// ExceptionsPrefix is where MFA exceptions are served.
const ExceptionsPrefix = "/api/v1/exceptions"

// Exceptions serves time-bound MFA exceptions:
//   - POST /api/v1/exceptions {identity, type: "mfa_bypass", justification,
//     compensating_controls, owner, expires_at} → 201; the expiry is
//     mandatory, in the future and at most max away; the caller may not be
//     the identity (separation of duties, 403), and a leaver gets none (409);
//   - GET /api/v1/exceptions?identity=&state=active|expired → 200;
//   - DELETE /api/v1/exceptions/{id} → 200, ending it early.
//
// Each write, its audit record and the identity's re-evaluation (an
// exception can make an awaiting_mfa identity active, and its end takes
// that back) commit in one transaction.
type Exceptions struct {
	Store  store.Store
	Engine *workflows.Engine
	Max    time.Duration
	Log    *slog.Logger
}

// ExceptionJSON is an exception as the API shows it.
type ExceptionJSON struct {
	ID                   string     `json:"id"`
	Identity             string     `json:"identity"`
	Type                 string     `json:"type"`
	Justification        string     `json:"justification"`
	CompensatingControls string     `json:"compensating_controls"`
	Owner                string     `json:"owner"`
	CreatedBy            string     `json:"created_by"`
	Created              time.Time  `json:"created"`
	ExpiresAt            time.Time  `json:"expires_at"`
	Ended                *time.Time `json:"ended,omitempty"`
	EndedBy              string     `json:"ended_by,omitempty"`
	State                string     `json:"state"` // active or expired
}

func exceptionJSON(x *store.Exception, now time.Time) ExceptionJSON {
	j := ExceptionJSON{ID: x.ID, Identity: x.IdentityID, Type: x.Type, Justification: x.Justification,
		CompensatingControls: x.CompensatingControls, Owner: x.Owner, CreatedBy: x.CreatedBy,
		Created: x.Created.UTC(), ExpiresAt: x.ExpiresAt.UTC(), EndedBy: x.EndedBy, State: "expired"}
	if !x.Ended.IsZero() {
		t := x.Ended.UTC()
		j.Ended = &t
	}
	if x.Live(now) {
		j.State = "active"
	}
	return j
}

// Handler returns the HTTP handler.
func (x *Exceptions) Handler() http.Handler {
	h := newHandler(x.Store, x.Log)
	mux := http.NewServeMux()
	mux.HandleFunc(ExceptionsPrefix, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			h.api.ServeStatus(http.MethodPost, http.StatusCreated, x.create)(w, r)
			return
		}
		h.api.Serve(http.MethodGet, x.list)(w, r)
	})
	mux.HandleFunc(ExceptionsPrefix+"/{id}", h.api.ServeStatus(http.MethodDelete, http.StatusOK, x.end))
	return mux
}

type createRequest struct {
	Identity             string `json:"identity"`
	Type                 string `json:"type"`
	Justification        string `json:"justification"`
	CompensatingControls string `json:"compensating_controls"`
	Owner                string `json:"owner"`
	ExpiresAt            string `json:"expires_at"`
}

func (x *Exceptions) create(r *http.Request) (any, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "reading body: %v", err)
	}
	var req createRequest
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "malformed body: %v", err)
	}
	now := x.Engine.Now().UTC()
	var problems []string
	need := func(v, name string) {
		if strings.TrimSpace(v) == "" {
			problems = append(problems, name+" is required")
		}
	}
	need(req.Identity, "identity")
	need(req.Justification, "justification")
	need(req.CompensatingControls, "compensating_controls")
	need(req.Owner, "owner")
	if req.Type != "mfa_bypass" {
		problems = append(problems, `type must be "mfa_bypass"`)
	}
	expires, err := time.Parse(time.RFC3339, req.ExpiresAt)
	switch {
	case req.ExpiresAt == "":
		problems = append(problems, "expires_at is required")
	case err != nil:
		problems = append(problems, "expires_at must be an RFC 3339 time")
	case !expires.After(now):
		problems = append(problems, "expires_at must be in the future")
	case expires.Sub(now) > x.Max:
		problems = append(problems, "expires_at is more than "+x.Max.String()+" away (mfa.exception_max)")
	}
	if len(problems) > 0 {
		return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "%s", strings.Join(problems, "; "))
	}
	ctx := context.WithoutCancel(r.Context())
	actor := reqctx.Actor(ctx)
	ex := &store.Exception{ID: newExceptionID(), IdentityID: req.Identity, Type: req.Type,
		Justification: req.Justification, CompensatingControls: req.CompensatingControls, Owner: req.Owner,
		CreatedBy: actor, Created: now, ExpiresAt: expires.UTC()}
	err = x.Store.Update(ctx, func(tx store.Tx) error {
		if err := x.separate(ctx, tx, req.Identity, actor); err != nil {
			return err
		}
		if err := tx.CreateException(ctx, ex); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return apijson.Errorf(http.StatusNotFound, CodeNotFound, "no identity %q", req.Identity)
			}
			return err
		}
		if _, err := audit.Append(ctx, tx, now, audit.Entry{Actor: actor, Action: "mfa.exception.create",
			ResourceType: store.TypeIdentity, ResourceID: req.Identity, RequestID: reqctx.RequestID(ctx),
			After: exceptionJSON(ex, now)}); err != nil {
			return err
		}
		return x.Engine.Reevaluate(ctx, tx, req.Identity)
	})
	if err != nil {
		return nil, err
	}
	return exceptionJSON(ex, now), nil
}

// separate refuses an exception for a leaver (409), and one granted by its
// own subject (403): the caller's name (a token name, or the JWT subject)
// must not be the identity's userName or one of its emails.
func (x *Exceptions) separate(ctx context.Context, tx store.Tx, identity, actor string) error {
	idn, err := tx.GetIdentity(ctx, identity)
	if errors.Is(err, store.ErrNotFound) {
		return apijson.Errorf(http.StatusNotFound, CodeNotFound, "no identity %q", identity)
	}
	if err != nil {
		return err
	}
	if idn.State == store.StateTerminated || idn.State == store.StateDeleted {
		return apijson.Errorf(http.StatusConflict, apijson.CodeConflict, "identity %q is %s: leavers get no MFA exception", identity, idn.State)
	}
	if workflows.IsSubject(ctx, tx, idn, actor) {
		return apijson.Errorf(http.StatusForbidden, apijson.CodeForbidden, "an MFA exception cannot be granted by its own subject")
	}
	return nil
}

func (x *Exceptions) list(r *http.Request) (any, error) {
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && state != "active" && state != "expired" {
		return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, `state must be "active" or "expired", not %q`, state)
	}
	now := x.Engine.Now().UTC()
	out := []ExceptionJSON{}
	err := x.Store.View(r.Context(), func(tx store.ReadTx) error {
		xs, err := tx.Exceptions(r.Context(), q.Get("identity"))
		for _, e := range xs {
			j := exceptionJSON(e, now)
			if state == "" || j.State == state {
				out = append(out, j)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"exceptions": out}, nil
}

func (x *Exceptions) end(r *http.Request) (any, error) {
	ctx := context.WithoutCancel(r.Context())
	id := r.PathValue("id")
	now := x.Engine.Now().UTC()
	actor := reqctx.Actor(ctx)
	var ended *store.Exception
	err := x.Store.Update(ctx, func(tx store.Tx) error {
		ex, err := tx.GetException(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return apijson.Errorf(http.StatusNotFound, CodeNotFound, "no exception %q", id)
		}
		if err != nil {
			return err
		}
		if !ex.Live(now) {
			return apijson.Errorf(http.StatusConflict, apijson.CodeConflict, "exception %q is no longer active", id)
		}
		if err := tx.EndException(ctx, id, now, actor); err != nil {
			return err
		}
		ex.Ended, ex.EndedBy = now, actor
		ended = ex
		if _, err := audit.Append(ctx, tx, now, audit.Entry{Actor: actor, Action: "mfa.exception.end",
			ResourceType: store.TypeIdentity, ResourceID: ex.IdentityID, RequestID: reqctx.RequestID(ctx),
			After: exceptionJSON(ex, now)}); err != nil {
			return err
		}
		return x.Engine.Reevaluate(ctx, tx, ex.IdentityID)
	})
	if err != nil {
		return nil, err
	}
	return exceptionJSON(ended, now), nil
}

func newExceptionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "exc_" + hex.EncodeToString(b[:])
}
