// Package identityapi serves the read side of the lifecycle engine over
// plain net/http: the identities, one identity's detail and its audit
// history, as JSON under /api/v1/identities.
//
// The handler does no authentication: whoever mounts it (internal/httpapi)
// applies auth and scopes, and mounts it without stripping the prefix.
// Every read of one request runs in one store.View, so a response shows one
// consistent snapshot. Errors are JSON {"error": code, "message": text} with
// the codes below; store failures are logged in full and answered with a
// generic message.
package identityapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jmlgate/jmlgate/internal/apijson"
	"github.com/jmlgate/jmlgate/internal/store"
)

// Prefix is the path Handler serves and everything below it.
const Prefix = "/api/v1/identities"

// ResourceTypeIdentity is the audit ResourceType of lifecycle records; the
// SCIM writes about the same person are under store.TypeUser with the same
// id. History merges both.
const ResourceTypeIdentity = store.TypeIdentity

// Page sizes for ?limit=: absent means DefaultLimit, larger than MaxLimit
// is served as MaxLimit.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Error codes of the {"error": code} body (those of package apijson).
const (
	CodeInvalidRequest   = apijson.CodeInvalidRequest   // 400: bad query parameter
	CodeNotFound         = apijson.CodeNotFound         // 404: unknown identity or path
	CodeMethodNotAllowed = apijson.CodeMethodNotAllowed // 405: only GET and HEAD are served
	CodeInternal         = apijson.CodeInternal         // 500: store failure, logged
)

// List is the body of GET /api/v1/identities.
type List struct {
	Identities []Summary `json:"identities"`
	// NextCursor, when set, is the cursor= of the next page; absent on the
	// last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// Summary is one identity in a list.
type Summary struct {
	ID          string    `json:"id"`
	UserName    string    `json:"userName"`
	State       string    `json:"state"`
	StartDate   time.Time `json:"startDate,omitzero"`
	EndDate     time.Time `json:"endDate,omitzero"`
	MFAEnrolled bool      `json:"mfaEnrolled"`
	LeaverAt    time.Time `json:"leaverAt,omitzero"`
	Updated     time.Time `json:"updated"`
	Version     int64     `json:"version"`
}

// Detail is the body of GET /api/v1/identities/{id}. Times are RFC 3339 in
// UTC with nanoseconds; optional ones are omitted when unset.
//
// Desired is what the roles grant; Actual is what jmlgate last knew to be
// true in each connector (the state its deliveries reached); Deliveries are
// the identity's outstanding deliveries, dead letters included. A leaver
// has LeaverAt, and once every connector acknowledged the revocation,
// RevokedAt and TimeToRevokeMS.
type Detail struct {
	ID        string    `json:"id"`
	UserName  string    `json:"userName"`
	State     string    `json:"state"`
	StartDate time.Time `json:"startDate,omitzero"`
	EndDate   time.Time `json:"endDate,omitzero"`
	MFA       MFA       `json:"mfa"`
	// Exceptions are the identity's live MFA exceptions.
	Exceptions []ExceptionJSON `json:"exceptions"`
	// Desired is store.Identity.Desired as stored, [] when none.
	Desired json.RawMessage `json:"desired"`
	// Actual maps connector name to the account there.
	Actual map[string]AccountJSON `json:"actual"`
	// Deliveries are the identity's pending, running and dead deliveries.
	Deliveries []DeliveryJSON `json:"deliveries"`
	// PendingApprovals are the identity's approvals still pending.
	PendingApprovals []ApprovalJSON `json:"pendingApprovals"`
	LeaverAt         time.Time      `json:"leaverAt,omitzero"`
	RevokedAt        time.Time      `json:"revokedAt,omitzero"`
	TimeToRevokeMS   *int64         `json:"timeToRevokeMs,omitempty"`
	Created          time.Time      `json:"created"`
	Updated          time.Time      `json:"updated"`
	Version          int64          `json:"version"`
}

// AccountJSON is an identity's account in one connector.
type AccountJSON struct {
	Ref          string   `json:"ref"`
	Enabled      bool     `json:"enabled"`
	Entitlements []string `json:"entitlements"`
	// Unconfirmed are grants sent whose answer was lost; Pending is an
	// account creation in the same state.
	Unconfirmed []string  `json:"unconfirmed,omitempty"`
	Pending     bool      `json:"pending,omitempty"`
	Updated     time.Time `json:"updated"`
}

// DeliveryJSON is an outstanding delivery as the identity detail shows it.
type DeliveryJSON struct {
	ID        int64     `json:"id"`
	Connector string    `json:"connector"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	RunAt     time.Time `json:"runAt"`
	LastError string    `json:"lastError,omitempty"`
}

// MFA is an identity's proven MFA enrollment.
type MFA struct {
	Enrolled   bool      `json:"enrolled"`
	Method     string    `json:"method,omitempty"`
	EnrolledAt time.Time `json:"enrolledAt,omitzero"`
}

// History is the body of GET /api/v1/identities/{id}/history.
type History struct {
	Records []Record `json:"records"`
	// NextCursor, when set, is the cursor= (a sequence number) of the next
	// page; absent on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// Record is one audit record; Hash is hex. BeforeDigest, AfterDigest and
// RequestID are "" when the record has none.
type Record struct {
	Seq          int64     `json:"seq"`
	Time         time.Time `json:"time"`
	Actor        string    `json:"actor"`
	Action       string    `json:"action"`
	ResourceType string    `json:"resourceType"`
	ResourceID   string    `json:"resourceId"`
	RequestID    string    `json:"requestId"`
	BeforeDigest string    `json:"beforeDigest"`
	AfterDigest  string    `json:"afterDigest"`
	Hash         string    `json:"hash"`
}

type handler struct {
	st  store.Store
	api *apijson.Server // the method check, JSON body and error mapping
}

// newHandler returns the handler of the package's APIs; a nil log discards.
func newHandler(st store.Store, log *slog.Logger) *handler {
	return &handler{st: st, api: &apijson.Server{Name: "identityapi", Log: log}}
}

// Handler serves, for GET and HEAD:
//
//	/api/v1/identities?state=&cursor=<id>&limit=    List, by id
//	/api/v1/identities/{id}                         Detail
//	/api/v1/identities/{id}/history?cursor=<seq>&limit=   History
//
// Other methods get 405 with Allow, other paths 404. A nil log discards.
func Handler(st store.Store, log *slog.Logger) http.Handler {
	h := newHandler(st, log)
	mux := http.NewServeMux()
	mux.HandleFunc(Prefix, h.api.Serve(http.MethodGet, h.list))
	mux.HandleFunc(Prefix+"/{id}", h.api.Serve(http.MethodGet, h.detail))
	mux.HandleFunc(Prefix+"/{id}/history", h.api.Serve(http.MethodGet, h.history))
	// Unknown paths are 404 for GET and HEAD, 405 for other methods.
	mux.HandleFunc("/", h.api.Serve(http.MethodGet, func(r *http.Request) (any, error) {
		return nil, apijson.NoSuchPath(r)
	}))
	return mux
}

var states = map[string]bool{
	store.StatePreHire: true, store.StateAwaitingMFA: true, store.StateActive: true,
	store.StateTerminated: true, store.StateDeleted: true,
}

// limit reads ?limit=: DefaultLimit when absent, at most MaxLimit.
func limit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "limit must be a positive integer, got %q", s)
	}
	return min(n, MaxLimit), nil
}

func (h *handler) list(r *http.Request) (any, error) {
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !states[state] {
		return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest,
			"unknown state %q; want one of pre_hire, awaiting_mfa, active, terminated, deleted", state)
	}
	n, err := limit(r)
	if err != nil {
		return nil, err
	}
	var ids []*store.Identity
	err = h.st.View(r.Context(), func(tx store.ReadTx) error {
		var err error
		// One more than asked tells whether a next page exists.
		ids, err = tx.ListIdentities(r.Context(), store.IdentityQuery{State: state, After: q.Get("cursor"), Limit: n + 1})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := List{Identities: make([]Summary, 0, min(len(ids), n))}
	if len(ids) > n {
		ids = ids[:n]
		out.NextCursor = ids[n-1].ID
	}
	for _, id := range ids {
		out.Identities = append(out.Identities, Summary{
			ID: id.ID, UserName: id.UserName, State: id.State,
			StartDate: id.StartDate.UTC(), EndDate: id.EndDate.UTC(),
			MFAEnrolled: enrolled(id), LeaverAt: id.LeaverAt.UTC(),
			Updated: id.Updated.UTC(), Version: id.Version,
		})
	}
	return out, nil
}

func enrolled(id *store.Identity) bool { return !id.MFAEnrolledAt.IsZero() || id.MFAMethod != "" }

func notFound(id string) error {
	return apijson.Errorf(http.StatusNotFound, CodeNotFound, "no identity with id %q", id)
}

func (h *handler) detail(r *http.Request) (any, error) {
	idParam := r.PathValue("id")
	var id *store.Identity
	live := []ExceptionJSON{}
	pending := []ApprovalJSON{}
	actual := map[string]AccountJSON{}
	deliveries := []DeliveryJSON{}
	now := time.Now().UTC()
	err := h.st.View(r.Context(), func(tx store.ReadTx) error {
		var err error
		if id, err = tx.GetIdentity(r.Context(), idParam); err != nil {
			return err
		}
		xs, err := tx.Exceptions(r.Context(), idParam)
		if err != nil {
			return err
		}
		for _, x := range xs {
			if x.Live(now) {
				live = append(live, exceptionJSON(x, now))
			}
		}
		as, err := tx.Approvals(r.Context(), store.ApprovalQuery{State: store.ApprovalPending, IdentityID: idParam})
		if err != nil {
			return err
		}
		for _, a := range as {
			pending = append(pending, approvalJSON(a))
		}
		accts, err := tx.Accounts(r.Context(), idParam)
		if err != nil {
			return err
		}
		for _, a := range accts {
			ents := a.Entitlements
			if ents == nil {
				ents = []string{}
			}
			actual[a.Connector] = AccountJSON{Ref: a.Ref, Enabled: a.Enabled, Entitlements: ents,
				Unconfirmed: a.Maybe, Pending: a.Pending, Updated: a.Updated.UTC()}
		}
		ds, err := tx.Deliveries(r.Context(), store.DeliveryQuery{IdentityID: idParam, Limit: 100})
		for _, d := range ds {
			deliveries = append(deliveries, DeliveryJSON{ID: d.ID, Connector: d.Connector, State: d.State,
				Attempts: d.Attempts, RunAt: d.RunAt.UTC(), LastError: d.LastError})
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(idParam)
	}
	if err != nil {
		return nil, err
	}
	desired := json.RawMessage(id.Desired)
	if len(desired) == 0 {
		desired = json.RawMessage(`[]`)
	}
	var ttr *int64
	if !id.LeaverAt.IsZero() && !id.RevokedAt.IsZero() {
		ms := id.RevokedAt.Sub(id.LeaverAt).Milliseconds()
		ttr = &ms
	}
	return Detail{
		ID: id.ID, UserName: id.UserName, State: id.State,
		StartDate: id.StartDate.UTC(), EndDate: id.EndDate.UTC(),
		MFA:              MFA{Enrolled: enrolled(id), Method: id.MFAMethod, EnrolledAt: id.MFAEnrolledAt.UTC()},
		Exceptions:       live,
		Desired:          desired,
		Actual:           actual,
		Deliveries:       deliveries,
		PendingApprovals: pending,
		LeaverAt:         id.LeaverAt.UTC(),
		RevokedAt:        id.RevokedAt.UTC(),
		TimeToRevokeMS:   ttr,
		Created:          id.Created.UTC(),
		Updated:          id.Updated.UTC(),
		Version:          id.Version,
	}, nil
}

func (h *handler) history(r *http.Request) (any, error) {
	idParam := r.PathValue("id")
	from := int64(1)
	if s := r.URL.Query().Get("cursor"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "cursor must be a positive sequence number, got %q", s)
		}
		from = n
	}
	n, err := limit(r)
	if err != nil {
		return nil, err
	}
	var recs []*store.AuditRecord
	err = h.st.View(r.Context(), func(tx store.ReadTx) error {
		var err error
		if recs, err = page(r.Context(), tx, idParam, from, n+1); err != nil || len(recs) > 0 {
			return err
		}
		// An empty page: 404 unless the identity or some record exists.
		switch _, err := tx.GetIdentity(r.Context(), idParam); {
		case err == nil:
			return nil
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if from > 1 {
			if some, err := page(r.Context(), tx, idParam, 1, 1); err != nil || len(some) > 0 {
				return err
			}
		}
		return notFound(idParam)
	})
	if err != nil {
		return nil, err
	}
	out := History{Records: make([]Record, 0, min(len(recs), n))}
	if len(recs) > n {
		out.NextCursor = strconv.FormatInt(recs[n].Seq, 10)
		recs = recs[:n]
	}
	for _, rec := range recs {
		out.Records = append(out.Records, Record{
			Seq: rec.Seq, Time: rec.Time.UTC(), Actor: rec.Actor, Action: rec.Action,
			ResourceType: rec.ResourceType, ResourceID: rec.ResourceID, RequestID: rec.RequestID,
			BeforeDigest: rec.BeforeDigest, AfterDigest: rec.AfterDigest, Hash: hex.EncodeToString(rec.Hash),
		})
	}
	return out, nil
}

// page returns the first limit records with Seq >= from about id as a SCIM
// user or as a lifecycle identity, merged in sequence order.
func page(ctx context.Context, tx store.ReadTx, id string, from int64, limit int) ([]*store.AuditRecord, error) {
	users, err := tx.AuditFor(ctx, store.TypeUser, id, from, limit)
	if err != nil {
		return nil, err
	}
	lifecycle, err := tx.AuditFor(ctx, ResourceTypeIdentity, id, from, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*store.AuditRecord, 0, min(len(users)+len(lifecycle), limit))
	for len(out) < limit && (len(users) > 0 || len(lifecycle) > 0) {
		if len(lifecycle) == 0 || (len(users) > 0 && users[0].Seq < lifecycle[0].Seq) {
			out, users = append(out, users[0]), users[1:]
		} else {
			out, lifecycle = append(out, lifecycle[0]), lifecycle[1:]
		}
	}
	return out, nil
}
