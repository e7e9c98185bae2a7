package identityapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jmlgate/jmlgate/internal/apijson"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/workflows"
)

// MFAHandler serves built-in TOTP enrollment:
//   - POST /api/v1/identities/{id}/mfa/totp → 201 {"otpauth_uri": ...}: the
//     secret is shown in that URI once and stored only sealed;
//   - POST /api/v1/identities/{id}/mfa/totp/verify {"code": "123456"} →
//     200 {"verified": true, "state": ...}; a wrong or reused code is 400
//     invalid_code, a locked enrollment 429 locked with Retry-After.
func MFAHandler(m *workflows.MFA, log *slog.Logger) http.Handler {
	h := newHandler(m.Store, log)
	mux := http.NewServeMux()
	mux.HandleFunc(Prefix+"/{id}/mfa/totp", h.api.ServeStatus(http.MethodPost, http.StatusCreated, func(r *http.Request) (any, error) {
		uri, err := m.BeginTOTP(r.Context(), r.PathValue("id"))
		if err != nil {
			return nil, mfaError(err)
		}
		return map[string]string{"otpauth_uri": uri}, nil
	}))
	mux.HandleFunc(Prefix+"/{id}/mfa/totp/verify", func(w http.ResponseWriter, r *http.Request) {
		h.api.ServeStatus(http.MethodPost, http.StatusOK, func(r *http.Request) (any, error) {
			var req struct {
				Code string `json:"code"`
			}
			b, err := io.ReadAll(io.LimitReader(r.Body, 4096))
			if err != nil {
				return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "reading body: %v", err)
			}
			d := json.NewDecoder(bytes.NewReader(b))
			d.DisallowUnknownFields()
			if err := d.Decode(&req); err != nil {
				return nil, apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, `body must be {"code": "123456"}: %v`, err)
			}
			id := r.PathValue("id")
			if err := m.VerifyTOTP(r.Context(), id, req.Code); err != nil {
				if le, ok := errors.AsType[*workflows.LockedError](err); ok {
					w.Header().Set("Retry-After", strconv.Itoa(int(time.Until(le.Until).Seconds())+1))
				}
				return nil, mfaError(err)
			}
			var state string
			if idn, err := getIdentity(r, m, id); err == nil {
				state = idn
			}
			return map[string]any{"verified": true, "state": state}, nil
		})(w, r)
	})
	return mux
}

func getIdentity(r *http.Request, m *workflows.MFA, id string) (string, error) {
	var state string
	err := m.Store.View(r.Context(), func(tx store.ReadTx) error {
		idn, err := tx.GetIdentity(r.Context(), id)
		if err == nil {
			state = idn.State
		}
		return err
	})
	return state, err
}

// mfaError maps the MFA errors to API errors; others stay internal.
func mfaError(err error) error {
	switch {
	case errors.Is(err, workflows.ErrNoIdentity):
		return apijson.Errorf(http.StatusNotFound, CodeNotFound, "%v", err)
	case errors.Is(err, workflows.ErrNotEnrollable), errors.Is(err, workflows.ErrNotEnrolled):
		return apijson.Errorf(http.StatusConflict, apijson.CodeConflict, "%v", err)
	case errors.Is(err, workflows.ErrInvalidCode), errors.Is(err, workflows.ErrCodeReused):
		return apijson.Errorf(http.StatusBadRequest, "invalid_code", "%v", err)
	case errors.Is(err, workflows.ErrLockedOut):
		return apijson.Errorf(http.StatusTooManyRequests, "locked", "%v", err)
	case errors.Is(err, workflows.ErrMalformedCode):
		return apijson.Errorf(http.StatusBadRequest, CodeInvalidRequest, "%v", err)
	}
	return err
}
