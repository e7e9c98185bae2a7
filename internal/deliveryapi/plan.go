package deliveryapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/jmlgate/jmlgate/internal/apijson"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/workflows"
)

// planPattern is the path PlanHandler serves.
const planPattern = "/api/v1/identities/{id}/plan"

// PlanHandler serves GET (and HEAD) /api/v1/identities/{id}/plan: Plan, the
// dry run of the identity's next delivery to every configured connector
// (workflows.Dispatcher.PlanFor), read in one store.View; 404 for an
// unknown identity and for every other path. It sends nothing.
//
// It lives under the identities prefix that identityapi.Handler serves, so
// the caller routes that one path here, e.g. on a ServeMux holding both:
// mux.Handle("/api/v1/identities/{id}/plan", PlanHandler(...)) next to
// mux.Handle("/", identityapi.Handler(...)). A nil log discards.
func PlanHandler(d *workflows.Dispatcher, st store.Store, log *slog.Logger) http.Handler {
	h := newHandler(d, st, log)
	mux := http.NewServeMux()
	mux.HandleFunc(planPattern, h.api.Serve(http.MethodGet, h.plan))
	mux.HandleFunc("/", h.api.NotFound)
	return mux
}

func (h *handler) plan(r *http.Request) (any, error) {
	id := r.PathValue("id")
	out := Plan{Identity: id}
	err := h.st.View(r.Context(), func(tx store.ReadTx) error {
		idn, err := tx.GetIdentity(r.Context(), id)
		if err != nil {
			return err
		}
		out.State = idn.State
		out.Connectors, err = h.d.PlanFor(r.Context(), tx, id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, apijson.Errorf(http.StatusNotFound, apijson.CodeNotFound, "no identity with id %q", id)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
