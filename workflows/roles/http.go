package roles

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/resource"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// Paths served by Handler.
const (
	RolesPath    = "/api/v1/roles"
	EvaluatePath = "/api/v1/roles/evaluate"
)

// MaxEvaluateBody is the largest request body POST /api/v1/roles/evaluate
// reads.
const MaxEvaluateBody = 1 << 20

// Handler serves the role API. It authenticates nobody: mount it behind
// the HTTP layer's authentication and scope checks.
//
//   - GET /api/v1/roles lists the configured roles in configuration order:
//     200 {"roles": [{"name", "description", "when", "grants": [{"connector",
//     "entitlement"}], "privileged", "approvals_required"}]}.
//   - POST /api/v1/roles/evaluate is a dry run: the body is a SCIM User
//     document as an HR client would send it to /scim/v2/Users, optionally
//     with "groups": the display names of the groups to assume, as strings
//     or as SCIM group references {"value", "display"} (the display is
//     used). Nothing is stored. 200 {"user": <User as `when` sees it>,
//     "matches": [Match...], "desired": [DesiredGrant...]}. When a role's
//     expression fails on this user, "errors" lists [{"role", "message"}],
//     "matches" holds the roles that did evaluate to true, and "desired" is
//     null: the lifecycle engine computes no desired access for a person it
//     cannot evaluate completely (see Set.Evaluate).
//
// Errors are JSON {"error": code, "message": ...}: 400 invalid_request (the
// body is not one JSON object, names its byte offset when malformed, or is
// not a valid SCIM User: the message is resource.Normalize's detail), 413
// body_too_large (over MaxEvaluateBody), 405 method_not_allowed (with
// Allow), 404 not_found for any other path, and 500 internal, logged in
// full on log and shown without detail. A nil log discards.
func Handler(s *Set, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{set: s, log: log, user: schema.New().User}
	list, err := marshal(map[string]any{"roles": s.Roles()})
	if err != nil {
		panic("roles: encoding the role list: " + err.Error()) // Role holds only strings, bools, ints
	}
	h.list = list
	return h
}

type handler struct {
	set  *Set
	log  *slog.Logger
	user *schema.ResourceType
	list []byte // the GET response, fixed because the Set is immutable
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case RolesPath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s; use GET", r.Method, RolesPath))
			return
		}
		writeJSON(w, http.StatusOK, h.list)
	case EvaluatePath:
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s; use POST", r.Method, EvaluatePath))
			return
		}
		h.evaluate(w, r)
	default:
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such path %q", r.URL.Path))
	}
}

// evalError is one role whose expression failed in a dry run.
type evalError struct {
	Role    string `json:"role"`
	Message string `json:"message"`
}

type evaluateResponse struct {
	User    User           `json:"user"`
	Matches []Match        `json:"matches"`
	Desired []DesiredGrant `json:"desired"`
	Errors  []evalError    `json:"errors,omitempty"`
}

func (h *handler) evaluate(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxEvaluateBody {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, MaxEvaluateBody))
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEvaluateBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("request body exceeds the limit of %d bytes", MaxEvaluateBody))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "reading the request body: "+err.Error())
		return
	}
	body, msg := decodeObject(b)
	if msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	groups, msg := takeGroups(body)
	if msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	doc, err := resource.Normalize(h.user, body, resource.Create)
	if err != nil {
		var se *serr.ScimError
		if errors.As(err, &se) && se.Status < 500 {
			writeError(w, http.StatusBadRequest, "invalid_request", se.Detail)
			return
		}
		h.internal(w, r, "normalizing the user document", err)
		return
	}
	u := UserFromSCIM(doc, groups)
	ms, errs := h.set.evaluate(u)
	resp := evaluateResponse{User: u, Matches: ms}
	if len(errs) == 0 {
		resp.Desired = Desired(ms)
	}
	for _, re := range errs {
		resp.Errors = append(resp.Errors, evalError{Role: re.Role, Message: re.Err.Error()})
		h.log.WarnContext(r.Context(), "role expression failed in a dry run", "role", re.Role, "error", re.Err)
	}
	out, err := marshal(resp)
	if err != nil {
		h.internal(w, r, "encoding the response", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeObject parses b as exactly one JSON object with exact numbers. It
// returns a message for the client when b is anything else.
func decodeObject(b []byte) (map[string]any, string) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, "request body is empty; send a SCIM User document"
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Sprintf("malformed JSON: unexpected end of input at byte %d", len(b))
		}
		return nil, "malformed JSON: " + err.Error()
	}
	if d.More() {
		return nil, fmt.Sprintf("malformed JSON: unexpected data after the top-level value at byte %d", d.InputOffset())
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, "request body must be a JSON object (a SCIM User document)"
	}
	return m, ""
}

// takeGroups removes the dry run's "groups" key (any case) from body and
// returns its display names. A SCIM User's groups attribute is read-only,
// so Normalize would drop it anyway; here it says which groups to assume.
func takeGroups(body map[string]any) ([]string, string) {
	var key string
	for _, k := range slices.Sorted(maps.Keys(body)) {
		if strings.EqualFold(k, "groups") {
			if key != "" {
				return nil, fmt.Sprintf("attribute %q given more than once (as %q and %q)", "groups", key, k)
			}
			key = k
		}
	}
	if key == "" {
		return []string{}, ""
	}
	v := body[key]
	delete(body, key)
	if v == nil {
		return []string{}, ""
	}
	list, ok := v.([]any)
	if !ok {
		return nil, `"groups" must be an array of group display names`
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		name, ok := e.(string)
		if m, isObj := e.(map[string]any); isObj {
			name, ok = m["display"].(string)
		}
		switch {
		case !ok:
			return nil, fmt.Sprintf(`"groups[%d]" must be a group display name (a string) or an object with a "display" string`, i)
		case strings.TrimSpace(name) == "":
			return nil, fmt.Sprintf(`"groups[%d]" is an empty group name`, i)
		}
		out = append(out, name)
	}
	return out, ""
}

func (h *handler) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.log.ErrorContext(r.Context(), "roles API: "+what, "error", err, "path", r.URL.Path)
	writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
}

// marshal encodes v as JSON without HTML escaping, so expressions such as
// a && b read as written.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, msg})
	writeJSON(w, status, b)
}
