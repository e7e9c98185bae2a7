// Package deliveryapi is the admin side of delivery over plain net/http:
// the delivery queue and its dead letters (with retry), the configured
// connectors with their health, capabilities and queue depth, on-demand
// reconciliation, an identity's delivery plan, and the queue's Prometheus
// gauges.
//
// The handlers do no authentication: whoever mounts them (internal/httpapi)
// applies auth and the admin scope, and mounts them without stripping the
// prefix. Errors are JSON {"error": code, "message": text}:
//
//	invalid_request    400  a bad path or query parameter (the message says which)
//	not_found          404  unknown delivery, connector, identity or path
//	method_not_allowed 405  with Allow
//	conflict           409  reconciling a connector that cannot list its accounts
//	connector_failed   502  the target failed while being listed for reconciliation
//	internal           500  store failure; logged in full, answered generically
package deliveryapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
	"github.com/jmlgate/jmlgate/internal/apijson"
	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/workflows"
)

// Path prefixes Handler serves.
const (
	DeliveriesPrefix = "/api/v1/deliveries"
	ConnectorsPrefix = "/api/v1/connectors"
)

// Page sizes of GET /api/v1/deliveries?limit=.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// codeConnectorFailed is this API's own error code; the others are
// apijson's.
const codeConnectorFailed = "connector_failed"

// Delivery is a delivery as the API shows it. Times are RFC 3339 in UTC.
type Delivery struct {
	ID         int64  `json:"id"`
	IdentityID string `json:"identity_id"`
	Connector  string `json:"connector"`
	State      string `json:"state"` // pending, running or dead
	// Priority is "revoke" (runs first) or "grant".
	Priority  string    `json:"priority"`
	Attempts  int       `json:"attempts"`
	RunAt     time.Time `json:"run_at"`
	Enqueued  time.Time `json:"enqueued"`
	LastError string    `json:"last_error"` // "" when none
	Updated   time.Time `json:"updated"`
}

// DeliveryList is the body of GET /api/v1/deliveries.
type DeliveryList struct {
	Deliveries []Delivery `json:"deliveries"`
	// NextAfter, when set, is the after= of the next page; absent on the
	// last page.
	NextAfter int64 `json:"next_after,omitempty"`
}

// RetryResult is the body of POST /api/v1/deliveries/{id}/retry.
type RetryResult struct {
	// Retried is the id of the dead delivery retried.
	Retried int64 `json:"retried"`
	// Merged is true when the pair already had a pending delivery: the
	// dead one was removed and Delivery is that pending one (another id),
	// which covers the same work.
	Merged bool `json:"merged"`
	// Delivery is the pending delivery that will now do the work.
	Delivery Delivery `json:"delivery"`
}

// Connector is one configured connector (GET /api/v1/connectors).
type Connector struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Capabilities lists the optional interfaces the connector implements:
	// session_revoker, secret_rotator, lister (in that order).
	Capabilities []string         `json:"capabilities"`
	Health       workflows.Health `json:"health"`
	Queue        Queue            `json:"queue"`
}

// ConnectorList is the body of GET /api/v1/connectors, sorted by name.
type ConnectorList struct {
	Connectors []Connector `json:"connectors"`
}

// Queue is one connector's delivery queue.
type Queue struct {
	Pending int `json:"pending"`
	Running int `json:"running"`
	Dead    int `json:"dead"`
	// OldestPending is when the oldest change a pending delivery covers
	// was made; absent when nothing is pending.
	OldestPending time.Time `json:"oldest_pending,omitzero"`
	// OldestPendingAgeSeconds is now - OldestPending; 0 when none.
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
}

// Plan is the body of GET /api/v1/identities/{id}/plan.
type Plan struct {
	Identity   string              `json:"identity"`
	State      string              `json:"state"`
	Connectors []workflows.Planned `json:"connectors"`
}

type handler struct {
	d   *workflows.Dispatcher
	st  store.Store
	log *slog.Logger
	api *apijson.Server // the method check, JSON body and error mapping
}

func newHandler(d *workflows.Dispatcher, st store.Store, log *slog.Logger) *handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{d: d, st: st, log: log, api: &apijson.Server{Name: "deliveryapi", Log: log,
		MethodMessage: "method %s is not allowed here; use %s"}}
}

// Handler serves:
//
//	GET  /api/v1/deliveries?state=&connector=&identity=&after=&limit=
//	     DeliveryList in id order. state is pending, running or dead; after
//	     a delivery id (the previous page's next_after); limit 1..1000,
//	     default 100. Any other parameter, or one given twice, is 400.
//	GET  /api/v1/deliveries/{id}            Delivery
//	POST /api/v1/deliveries/{id}/retry      RetryResult; 404 unless dead
//	GET  /api/v1/connectors                 ConnectorList
//	GET  /api/v1/connectors/{name}          Connector
//	POST /api/v1/connectors/{name}/reconcile
//	     workflows.ReconcileReport; 409 when the connector cannot list
//
// GET also answers HEAD; other methods get 405 with Allow, other paths 404.
// A retry, its audit record ("delivery.retry", resource Identity, actor
// from reqctx) commit in one transaction that a client hanging up does not
// cancel. Each read runs in one store.View. A nil log discards.
func Handler(d *workflows.Dispatcher, st store.Store, log *slog.Logger) http.Handler {
	h := newHandler(d, st, log)
	mux := http.NewServeMux()
	mux.HandleFunc(DeliveriesPrefix, h.api.Serve(http.MethodGet, h.listDeliveries))
	mux.HandleFunc(DeliveriesPrefix+"/{id}", h.api.Serve(http.MethodGet, h.getDelivery))
	mux.HandleFunc(DeliveriesPrefix+"/{id}/retry", h.api.Serve(http.MethodPost, h.retry))
	mux.HandleFunc(ConnectorsPrefix, h.api.Serve(http.MethodGet, h.listConnectors))
	mux.HandleFunc(ConnectorsPrefix+"/{name}", h.api.Serve(http.MethodGet, h.getConnector))
	mux.HandleFunc(ConnectorsPrefix+"/{name}/reconcile", h.api.Serve(http.MethodPost, h.reconcile))
	mux.HandleFunc("/", h.api.NotFound)
	return mux
}

func (h *handler) now() time.Time {
	if h.d != nil && h.d.Now != nil {
		return h.d.Now().UTC()
	}
	return time.Now().UTC()
}

func deliveryJSON(d *store.Delivery) Delivery {
	return Delivery{
		ID: d.ID, IdentityID: d.IdentityID, Connector: d.Connector, State: d.State, Priority: priorityName(d.Priority),
		Attempts: d.Attempts, RunAt: d.RunAt.UTC(), Enqueued: d.Enqueued.UTC(), LastError: d.LastError, Updated: d.Updated.UTC(),
	}
}

func priorityName(p int) string {
	switch p {
	case store.PriorityRevoke:
		return "revoke"
	case store.PriorityGrant:
		return "grant"
	}
	return strconv.Itoa(p)
}

var listParams = []string{"state", "connector", "identity", "after", "limit"}

// deliveryQuery validates the query of GET /api/v1/deliveries.
func deliveryQuery(r *http.Request) (store.DeliveryQuery, error) {
	values := r.URL.Query()
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if !slices.Contains(listParams, k) {
			return store.DeliveryQuery{}, apijson.Errorf(http.StatusBadRequest, apijson.CodeInvalidRequest,
				"unknown query parameter %q; allowed: state, connector, identity, after, limit", k)
		}
		if len(values[k]) > 1 {
			return store.DeliveryQuery{}, apijson.Errorf(http.StatusBadRequest, apijson.CodeInvalidRequest, "query parameter %q given more than once", k)
		}
	}
	q := store.DeliveryQuery{State: values.Get("state"), Connector: values.Get("connector"),
		IdentityID: values.Get("identity"), Limit: defaultLimit}
	switch q.State {
	case "", store.DeliveryPending, store.DeliveryRunning, store.DeliveryDead:
	default:
		return q, apijson.Errorf(http.StatusBadRequest, apijson.CodeInvalidRequest, "unknown state %q; want dead, pending or running", q.State)
	}
	if s := values.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return q, apijson.Errorf(http.StatusBadRequest, apijson.CodeInvalidRequest, "after must be a delivery id (a non-negative integer), got %q", s)
		}
		q.After = n
	}
	if s := values.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return q, apijson.Errorf(http.StatusBadRequest, apijson.CodeInvalidRequest, "limit must be an integer from 1 to %d, got %q", maxLimit, s)
		}
		q.Limit = n
	}
	return q, nil
}

func (h *handler) listDeliveries(r *http.Request) (any, error) {
	q, err := deliveryQuery(r)
	if err != nil {
		return nil, err
	}
	n := q.Limit
	q.Limit++ // one more than asked tells whether a next page exists
	var ds []*store.Delivery
	if err := h.st.View(r.Context(), func(tx store.ReadTx) error {
		var err error
		ds, err = tx.Deliveries(r.Context(), q)
		return err
	}); err != nil {
		return nil, err
	}
	out := DeliveryList{Deliveries: make([]Delivery, 0, min(len(ds), n))}
	if len(ds) > n {
		ds = ds[:n]
		out.NextAfter = ds[n-1].ID
	}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, deliveryJSON(d))
	}
	return out, nil
}

func deliveryID(r *http.Request) (int64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, apijson.Errorf(http.StatusBadRequest, apijson.CodeInvalidRequest, "delivery id must be a positive integer, got %q", s)
	}
	return id, nil
}

func noDelivery(id int64) error {
	return apijson.Errorf(http.StatusNotFound, apijson.CodeNotFound, "no delivery %d", id)
}

func (h *handler) getDelivery(r *http.Request) (any, error) {
	id, err := deliveryID(r)
	if err != nil {
		return nil, err
	}
	var d *store.Delivery
	err = h.st.View(r.Context(), func(tx store.ReadTx) error {
		var err error
		d, err = tx.GetDelivery(r.Context(), id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, noDelivery(id)
	}
	if err != nil {
		return nil, err
	}
	return deliveryJSON(d), nil
}

// retry makes a dead delivery pending again (store.Tx.RetryDelivery) and
// audits it in the same transaction.
func (h *handler) retry(r *http.Request) (any, error) {
	id, err := deliveryID(r)
	if err != nil {
		return nil, err
	}
	ctx := context.WithoutCancel(r.Context())
	var out RetryResult
	err = h.st.Update(ctx, func(tx store.Tx) error {
		now := h.now()
		dead, err := tx.GetDelivery(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return noDelivery(id)
		}
		if err != nil {
			return err
		}
		if dead.State != store.DeliveryDead {
			return apijson.Errorf(http.StatusNotFound, apijson.CodeNotFound, "delivery %d is %s, not dead: only dead deliveries can be retried", id, dead.State)
		}
		if err := tx.RetryDelivery(ctx, id, now); err != nil {
			return err
		}
		cur, err := tx.GetDelivery(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Folded into the pair's pending delivery.
			ps, err := tx.Deliveries(ctx, store.DeliveryQuery{IdentityID: dead.IdentityID, Connector: dead.Connector,
				State: store.DeliveryPending, Limit: 1})
			if err != nil {
				return err
			}
			if len(ps) == 0 {
				return fmt.Errorf("retry of delivery %d: neither it nor a pending delivery of its pair exists", id)
			}
			cur = ps[0]
			out.Merged = true
		case err != nil:
			return err
		}
		out.Retried, out.Delivery = id, deliveryJSON(cur)
		_, err = audit.Append(ctx, tx, now, audit.Entry{
			Actor: reqctx.Actor(ctx), Action: "delivery.retry", ResourceType: store.TypeIdentity, ResourceID: dead.IdentityID,
			RequestID: reqctx.RequestID(ctx),
			Before:    map[string]any{"connector": dead.Connector, "delivery": id, "state": dead.State, "attempts": dead.Attempts},
			After:     map[string]any{"connector": dead.Connector, "delivery": cur.ID, "state": cur.State, "merged": out.Merged},
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (h *handler) targets() []*workflows.Target {
	out := make([]*workflows.Target, 0, len(h.d.Targets))
	for _, t := range h.d.Targets {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *workflows.Target) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func capabilities(c connectors.Connector) []string {
	out := []string{}
	if _, ok := c.(connectors.SessionRevoker); ok {
		out = append(out, "session_revoker")
	}
	if _, ok := c.(connectors.SecretRotator); ok {
		out = append(out, "secret_rotator")
	}
	if _, ok := c.(connectors.Lister); ok {
		out = append(out, "lister")
	}
	return out
}

func connectorJSON(t *workflows.Target, s store.QueueStats, now time.Time) Connector {
	q := Queue{Pending: s.Pending, Running: s.Running, Dead: s.Dead}
	if !s.OldestPending.IsZero() {
		q.OldestPending = s.OldestPending.UTC()
		q.OldestPendingAgeSeconds = max(0, now.Sub(s.OldestPending).Seconds())
	}
	return Connector{Name: t.Name, Type: t.Type, Capabilities: capabilities(t.Conn), Health: t.Health(), Queue: q}
}

func (h *handler) queueStats(ctx context.Context) (map[string]store.QueueStats, error) {
	var stats map[string]store.QueueStats
	err := h.st.View(ctx, func(tx store.ReadTx) error {
		var err error
		stats, err = tx.QueueStats(ctx)
		return err
	})
	return stats, err
}

func (h *handler) listConnectors(r *http.Request) (any, error) {
	stats, err := h.queueStats(r.Context())
	if err != nil {
		return nil, err
	}
	now := h.now()
	out := ConnectorList{Connectors: []Connector{}}
	for _, t := range h.targets() {
		out.Connectors = append(out.Connectors, connectorJSON(t, stats[t.Name], now))
	}
	return out, nil
}

func (h *handler) target(r *http.Request) (*workflows.Target, error) {
	name := r.PathValue("name")
	t := h.d.Targets[name]
	if t == nil {
		return nil, apijson.Errorf(http.StatusNotFound, apijson.CodeNotFound, "no connector %q is configured", name)
	}
	return t, nil
}

func (h *handler) getConnector(r *http.Request) (any, error) {
	t, err := h.target(r)
	if err != nil {
		return nil, err
	}
	stats, err := h.queueStats(r.Context())
	if err != nil {
		return nil, err
	}
	return connectorJSON(t, stats[t.Name], h.now()), nil
}

// maxMessage bounds a connector's error text in a response.
const maxMessage = 500

func (h *handler) reconcile(r *http.Request) (any, error) {
	t, err := h.target(r)
	if err != nil {
		return nil, err
	}
	rep, err := h.d.Reconcile(r.Context(), t.Name)
	switch {
	case err == nil:
		return rep, nil
	case errors.Is(err, workflows.ErrUnknownConnector):
		return nil, apijson.Errorf(http.StatusNotFound, apijson.CodeNotFound, "no connector %q is configured", t.Name)
	case errors.Is(err, workflows.ErrNotLister):
		return nil, apijson.Errorf(http.StatusConflict, apijson.CodeConflict,
			"connector %q (type %s) cannot list its accounts, so it cannot be reconciled", t.Name, t.Type)
	}
	if ce, ok := errors.AsType[*connectors.Error](err); ok {
		// Connector errors carry no secrets (their suites check it) and
		// are what an admin needs to see; they are bounded all the same.
		msg := ce.Error()
		if len(msg) > maxMessage {
			msg = msg[:maxMessage] + "…"
		}
		h.log.WarnContext(r.Context(), "deliveryapi: reconcile failed", "connector", t.Name,
			"class", ce.Class.String(), "err", msg)
		return nil, apijson.Errorf(http.StatusBadGateway, codeConnectorFailed, "connector %q failed (%s): %s", t.Name, ce.Class, msg)
	}
	return nil, err
}
