package scimtarget

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/scim"
)

// Kinds of Op: what a state-changing request did to one user.
const (
	OpCreate       = "create"        // POST /Users
	OpEnable       = "enable"        // active set to true (PATCH or PUT)
	OpDisable      = "disable"       // active set to false (PATCH or PUT)
	OpUpdate       = "update"        // other attributes of a user changed
	OpDelete       = "delete"        // DELETE /Users/{id}
	OpAddMember    = "add_member"    // the user added to a group
	OpRemoveMember = "remove_member" // the user removed from a group
	OpCreateGroup  = "create_group"  // POST /Groups
	// OpOther is any other state-changing request (group replace or
	// delete, Bulk, a PATCH the recorder does not parse): User is empty,
	// so a test can insist there is none.
	OpOther = "other"
)

// Op is one effect of a state-changing request (any method but GET and
// HEAD) that reached the SCIM service: requests refused by SetDown,
// FailNext or the token check are counted by Requests but are not ops.
type Op struct {
	// Seq numbers ops 1, 2, … in the order the target finished applying
	// their requests (the ops of one request are consecutive).
	Seq    int64
	At     time.Time
	Kind   string
	User   string // the target's user id ("" for OpCreateGroup, OpOther)
	Group  string // the target's group id, for memberships
	Status int    // the target's answer; >= 300 means nothing changed
	Method string
	Path   string // below the SCIM prefix, e.g. /Groups/{id}
}

// Applied reports whether the target accepted the request.
func (o Op) Applied() bool { return o.Status < 300 }

// Ops returns every op so far, in Seq order.
func (s *Server) Ops() []Op {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Op(nil), s.ops...)
}

// Counts returns how many ops of each kind the target applied (Status
// below 300), without copying the history.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// History returns the ops on the user with the target id userID, in Seq
// order.
func (s *Server) History(userID string) []Op {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Op
	for _, o := range s.ops {
		if o.User == userID {
			out = append(out, o)
		}
	}
	return out
}

// recorder keeps the status and, when asked, the body of a response.
type recorder struct {
	http.ResponseWriter
	status int
	body   *bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body != nil {
		r.body.Write(p)
	}
	return r.ResponseWriter.Write(p)
}

// serveRecorded serves r with h and records the ops of a state-changing
// request. The response of a small request is still buffered by net/http
// when OnOp runs, so the client normally has not seen it yet.
func (s *Server) serveRecorded(h http.Handler, w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		h.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	path := strings.TrimPrefix(r.URL.Path, scim.Prefix)
	rec := &recorder{ResponseWriter: w}
	if r.Method == http.MethodPost {
		rec.body = &bytes.Buffer{} // the created resource's id
	}
	ops, fast := s.fastMembership(r.Method, path, body)
	if fast {
		s.applyMembership(rec, r, ops)
	} else {
		h.ServeHTTP(rec, r)
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if !fast {
		var created []byte
		if rec.body != nil {
			created = rec.body.Bytes()
		}
		ops = classify(r.Method, path, body, created)
	}
	now := time.Now()
	s.mu.Lock()
	for i := range ops {
		ops[i].Seq = int64(len(s.ops) + 1)
		ops[i].At, ops[i].Status, ops[i].Method, ops[i].Path = now, rec.status, r.Method, path
		s.ops = append(s.ops, ops[i])
		if ops[i].Applied() {
			if s.counts == nil {
				s.counts = map[string]int{}
			}
			s.counts[ops[i].Kind]++
		}
	}
	s.mu.Unlock()
	if s.opts.OnOp != nil {
		for _, o := range ops {
			s.opts.OnOp(o)
		}
	}
}

// memberFilter is the path of a PATCH that removes one member.
var memberFilter = regexp.MustCompile(`(?i)^members\[\s*value\s+eq\s+"([^"]*)"\s*\]$`)

// classify turns one request into its ops; created is the response body
// of a POST.
func classify(method, path string, body, created []byte) []Op {
	other := []Op{{Kind: OpOther}}
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) == 0 || len(seg) > 2 {
		return other
	}
	res, id := seg[0], ""
	if len(seg) == 2 {
		id = seg[1]
	}
	switch {
	case res == "Users" && id == "" && method == http.MethodPost:
		var c struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(created, &c)
		return []Op{{Kind: OpCreate, User: c.ID}}
	case res == "Users" && id != "" && method == http.MethodDelete:
		return []Op{{Kind: OpDelete, User: id}}
	case res == "Users" && id != "" && method == http.MethodPut:
		var doc map[string]any
		if json.Unmarshal(body, &doc) != nil {
			return other
		}
		return []Op{{Kind: activeKind(doc["active"], true), User: id}}
	case res == "Users" && id != "" && method == http.MethodPatch:
		var ops []Op
		for _, p := range patchOps(body) {
			switch {
			case strings.EqualFold(p.Path, "active") && p.Op != "remove":
				ops = append(ops, Op{Kind: activeKind(p.Value, false), User: id})
			case p.Path == "":
				m, _ := p.Value.(map[string]any)
				ops = append(ops, Op{Kind: activeKind(m["active"], true), User: id})
			default:
				ops = append(ops, Op{Kind: OpUpdate, User: id})
			}
		}
		if ops == nil {
			return other
		}
		return ops
	case res == "Groups" && id == "" && method == http.MethodPost:
		var c struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(created, &c)
		var doc struct {
			Members []struct {
				Value string `json:"value"`
			} `json:"members"`
		}
		_ = json.Unmarshal(body, &doc)
		ops := []Op{{Kind: OpCreateGroup, Group: c.ID}}
		for _, m := range doc.Members {
			ops = append(ops, Op{Kind: OpAddMember, User: m.Value, Group: c.ID})
		}
		return ops
	case res == "Groups" && id != "" && method == http.MethodPatch:
		var ops []Op
		for _, p := range patchOps(body) {
			switch {
			case p.Op == "add" && strings.EqualFold(p.Path, "members"):
				for _, v := range memberValues(p.Value) {
					ops = append(ops, Op{Kind: OpAddMember, User: v, Group: id})
				}
			case p.Op == "add" && p.Path == "":
				m, _ := p.Value.(map[string]any)
				for _, v := range memberValues(m["members"]) {
					ops = append(ops, Op{Kind: OpAddMember, User: v, Group: id})
				}
			case p.Op == "remove" && memberFilter.MatchString(p.Path):
				ops = append(ops, Op{Kind: OpRemoveMember, User: memberFilter.FindStringSubmatch(p.Path)[1], Group: id})
			case p.Op == "remove" && strings.EqualFold(p.Path, "members") && p.Value != nil:
				for _, v := range memberValues(p.Value) {
					ops = append(ops, Op{Kind: OpRemoveMember, User: v, Group: id})
				}
			default:
				ops = append(ops, Op{Kind: OpOther, Group: id})
			}
		}
		if ops == nil {
			return other
		}
		return ops
	}
	return other
}

type patchOp struct {
	Op    string
	Path  string
	Value any
}

// patchOps decodes a PatchOp body; op names are lower-cased (Entra sends
// "Replace").
func patchOps(body []byte) []patchOp {
	var req struct {
		Operations []struct {
			Op    string `json:"op"`
			Path  string `json:"path"`
			Value any    `json:"value"`
		} `json:"Operations"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil
	}
	out := make([]patchOp, 0, len(req.Operations))
	for _, o := range req.Operations {
		out = append(out, patchOp{Op: strings.ToLower(o.Op), Path: strings.TrimSpace(o.Path), Value: o.Value})
	}
	return out
}

// activeKind reads an active value: a JSON boolean or, as Entra sends it,
// the string "True"/"False". With absentIsUpdate a missing value is an
// OpUpdate (a PUT, or a PATCH of other attributes); otherwise, like any
// other value, it is OpOther.
func activeKind(v any, absentIsUpdate bool) string {
	switch x := v.(type) {
	case bool:
		if x {
			return OpEnable
		}
		return OpDisable
	case string:
		switch strings.ToLower(x) {
		case "true":
			return OpEnable
		case "false":
			return OpDisable
		}
	case nil:
		if absentIsUpdate {
			return OpUpdate
		}
	}
	return OpOther
}

// memberValues reads [{"value": id}, …].
func memberValues(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, m := range list {
		if mm, ok := m.(map[string]any); ok {
			if s, ok := mm["value"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// fastMembership returns the ops of a group PATCH that FastMembership
// handles, and whether it does: only member adds and removes of users.
func (s *Server) fastMembership(method, path string, body []byte) ([]Op, bool) {
	if !s.opts.FastMembership || method != http.MethodPatch || !strings.HasPrefix(path, "/Groups/") {
		return nil, false
	}
	ops := classify(method, path, body, nil)
	for _, o := range ops {
		if (o.Kind != OpAddMember && o.Kind != OpRemoveMember) || o.User == "" {
			return nil, false
		}
	}
	return ops, len(ops) > 0
}

// applyMembership applies ops (from fastMembership) in one transaction and
// answers 204, or a SCIM error.
func (s *Server) applyMembership(w http.ResponseWriter, r *http.Request, ops []Op) {
	ctx := context.WithoutCancel(r.Context())
	gid := ops[0].Group
	var bad error
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetResource(ctx, store.TypeGroup, gid); err != nil {
			return err
		}
		for _, o := range ops {
			if o.Kind == OpRemoveMember {
				if err := tx.RemoveMembers(ctx, gid, []string{o.User}); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.GetResource(ctx, store.TypeUser, o.User); errors.Is(err, store.ErrNotFound) {
				bad = fmt.Errorf("members: no User with id %q", o.User)
				return bad
			} else if err != nil {
				return err
			}
			if err := tx.AddMembers(ctx, gid, []store.Member{{Value: o.User, Type: store.TypeUser}}); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case bad != nil:
		scimError(w, http.StatusBadRequest, "invalidValue", bad.Error())
	case errors.Is(err, store.ErrNotFound):
		scimError(w, http.StatusNotFound, "", fmt.Sprintf("no Group with id %q", gid))
	default:
		scimError(w, http.StatusInternalServerError, "", "internal error")
	}
}

func scimError(w http.ResponseWriter, status int, scimType, detail string) {
	body := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"status": fmt.Sprint(status), "detail": detail}
	if scimType != "" {
		body["scimType"] = scimType
	}
	raw, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}
