package scim

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// bulkRequest is RFC 7644 §3.7.
type bulkRequest struct {
	Schemas      []string `json:"schemas"`
	FailOnErrors int      `json:"failOnErrors"`
	Operations   []bulkOp `json:"Operations"`
}

type bulkOp struct {
	Method  string          `json:"method"`
	BulkID  string          `json:"bulkId,omitempty"`
	Version string          `json:"version,omitempty"`
	Path    string          `json:"path"`
	Data    json.RawMessage `json:"data,omitempty"`
}

type bulkOpResult struct {
	Method   string `json:"method"`
	BulkID   string `json:"bulkId,omitempty"`
	Version  string `json:"version,omitempty"`
	Location string `json:"location,omitempty"`
	Status   string `json:"status"`
	Response any    `json:"response,omitempty"`
}

const bulkRefPrefix = "bulkId:"

// handleBulk processes a Bulk request. Each operation is its own
// transaction (RFC 7644 §3.7 does not make Bulk atomic); operations run in
// order, except that one referring to the bulkId of a later POST waits until
// that POST has run. Processing stops after failOnErrors errors.
func (s *Server) handleBulk(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r, s.cfg.BulkMaxPayload)
	if err != nil {
		if se := asSCIM(err); se != nil && se.Status == http.StatusRequestEntityTooLarge {
			err = errorf(http.StatusRequestEntityTooLarge, "", "bulk request exceeds maxPayloadSize of %d bytes", s.cfg.BulkMaxPayload)
		}
		s.fail(w, r, err)
		return
	}
	var req bulkRequest
	if err := decodeStrict(b, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if !contains(req.Schemas, schema.BulkRequestURN) {
		s.fail(w, r, badRequest(serr.ScimTypeInvalidSyntax, "schemas must contain %q", schema.BulkRequestURN))
		return
	}
	if len(req.Operations) == 0 {
		s.fail(w, r, badRequest(serr.ScimTypeInvalidValue, "Operations must not be empty"))
		return
	}
	if len(req.Operations) > s.cfg.BulkMaxOperations {
		s.fail(w, r, errorf(http.StatusRequestEntityTooLarge, "",
			"bulk request has %d operations; maxOperations is %d", len(req.Operations), s.cfg.BulkMaxOperations))
		return
	}
	if req.FailOnErrors < 0 {
		s.fail(w, r, badRequest(serr.ScimTypeInvalidValue, "failOnErrors must not be negative"))
		return
	}
	declared := map[string]int{}
	for i, op := range req.Operations {
		if strings.EqualFold(op.Method, http.MethodPost) && op.BulkID == "" {
			s.fail(w, r, badRequest(serr.ScimTypeInvalidValue, "Operations[%d]: bulkId is required for POST", i))
			return
		}
		if op.BulkID != "" {
			if _, dup := declared[op.BulkID]; dup {
				s.fail(w, r, badRequest(serr.ScimTypeInvalidValue, "Operations[%d]: bulkId %q is used twice", i, op.BulkID))
				return
			}
			declared[op.BulkID] = i
		}
	}

	results := make([]*bulkOpResult, len(req.Operations))
	ids := map[string]string{}  // bulkId → created id
	failed := map[string]bool{} // bulkIds whose POST failed
	errorsSeen := 0
	pending := make([]int, len(req.Operations))
	for i := range pending {
		pending[i] = i
	}
	base := s.baseURL(r)
	stop := false
	for len(pending) > 0 && !stop {
		var next []int
		progressed := false
		for _, i := range pending {
			if stop {
				break
			}
			op := req.Operations[i]
			refs := bulkRefs(op)
			ready, broken := true, ""
			for _, ref := range refs {
				if failed[ref] {
					broken = ref
					break
				}
				if _, ok := ids[ref]; !ok {
					if _, declaredHere := declared[ref]; !declaredHere {
						broken = ref
						break
					}
					ready = false
				}
			}
			var res *bulkOpResult
			switch {
			case broken != "":
				res = bulkError(op, errorf(http.StatusConflict, serr.ScimTypeInvalidValue,
					"bulkId %q does not refer to a successful POST in this request", broken))
			case !ready:
				next = append(next, i)
				continue
			default:
				res = s.bulkOne(r.Context(), op, ids, base)
			}
			progressed = true
			results[i] = res
			if st, _ := strconv.Atoi(res.Status); st >= 400 {
				if op.BulkID != "" {
					failed[op.BulkID] = true
				}
				errorsSeen++
				if req.FailOnErrors > 0 && errorsSeen >= req.FailOnErrors {
					stop = true
				}
			}
		}
		if !progressed {
			// Every remaining operation waits on another: a cycle.
			for _, i := range next {
				results[i] = bulkError(req.Operations[i], errorf(http.StatusConflict, serr.ScimTypeInvalidValue,
					"circular bulkId references could not be resolved"))
			}
			break
		}
		pending = next
	}
	out := make([]*bulkOpResult, 0, len(results))
	for _, res := range results {
		if res != nil {
			out = append(out, res)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schemas": []string{schema.BulkResponseURN}, "Operations": out})
}

// bulkRefs lists the bulkIds op refers to in its path and data.
func bulkRefs(op bulkOp) []string {
	var refs []string
	if _, rest, ok := strings.Cut(op.Path, "/"+bulkRefPrefix); ok {
		refs = append(refs, rest)
	}
	if len(op.Data) > 0 {
		var v any
		if json.Unmarshal(op.Data, &v) == nil {
			walkStrings(v, func(s string) string {
				if strings.HasPrefix(s, bulkRefPrefix) {
					refs = append(refs, strings.TrimPrefix(s, bulkRefPrefix))
				}
				return s
			})
		}
	}
	return refs
}

// walkStrings replaces every string in v with f(string), in place where v
// is a container, and returns the new value.
func walkStrings(v any, f func(string) string) any {
	switch t := v.(type) {
	case string:
		return f(t)
	case map[string]any:
		for k, e := range t {
			t[k] = walkStrings(e, f)
		}
	case []any:
		for i, e := range t {
			t[i] = walkStrings(e, f)
		}
	}
	return v
}

func bulkError(op bulkOp, e *Error) *bulkOpResult {
	return &bulkOpResult{Method: strings.ToUpper(op.Method), BulkID: op.BulkID, Status: strconv.Itoa(e.Status), Response: e}
}

// bulkOne runs one operation through the same code as the single-resource
// endpoints.
func (s *Server) bulkOne(ctx context.Context, op bulkOp, ids map[string]string, base string) *bulkOpResult {
	resolve := func(v string) string {
		if strings.HasPrefix(v, bulkRefPrefix) {
			return ids[strings.TrimPrefix(v, bulkRefPrefix)]
		}
		return v
	}
	method := strings.ToUpper(op.Method)
	path := strings.Trim(op.Path, "/")
	typ, id, _ := strings.Cut(path, "/")
	var rt *schema.ResourceType
	for _, t := range []*schema.ResourceType{s.reg.User, s.reg.Group} {
		if strings.EqualFold("/"+typ, t.Endpoint) {
			rt = t
		}
	}
	if rt == nil || strings.Contains(id, "/") {
		return bulkError(op, badRequest(serr.ScimTypeInvalidPath, "path %q names no Users or Groups resource", op.Path))
	}
	id = resolve(id)
	var body map[string]any
	if len(op.Data) > 0 && method != http.MethodDelete {
		m, err := decodeObject(op.Data)
		if err != nil {
			return bulkError(op, asSCIM(err))
		}
		body = walkStrings(m, resolve).(map[string]any)
	}
	var res *result
	var err error
	switch {
	case method == http.MethodPost && id == "":
		if body == nil {
			return bulkError(op, badRequest(serr.ScimTypeInvalidSyntax, "POST needs data"))
		}
		res, err = s.create(ctx, rt, body, want{})
		if err == nil {
			ids[op.BulkID] = res.view.res.ID
		}
	case method == http.MethodPut && id != "":
		if body == nil {
			return bulkError(op, badRequest(serr.ScimTypeInvalidSyntax, "PUT needs data"))
		}
		res, err = s.replace(ctx, rt, id, body, op.Version, want{})
	case method == http.MethodPatch && id != "":
		var raw []byte
		if raw, err = json.Marshal(body); err == nil {
			res, err = s.patchDoc(ctx, rt, id, raw, op.Version, want{})
		}
	case method == http.MethodDelete && id != "":
		if err = s.remove(ctx, rt, id, op.Version); err == nil {
			return &bulkOpResult{Method: method, BulkID: op.BulkID, Location: base + rt.Endpoint + "/" + id, Status: "204"}
		}
	default:
		return bulkError(op, badRequest(serr.ScimTypeInvalidSyntax, "method %q is not allowed on path %q", op.Method, op.Path))
	}
	if err != nil {
		se := asSCIM(err)
		if se == nil {
			s.log.ErrorContext(ctx, "scim: bulk operation failed", "error", err, "method", method, "path", op.Path)
			se = errInternal
		}
		return bulkError(op, se)
	}
	return &bulkOpResult{Method: method, BulkID: op.BulkID, Version: etag(res.view.res.Version),
		Location: base + rt.Endpoint + "/" + res.view.res.ID, Status: strconv.Itoa(res.status)}
}
