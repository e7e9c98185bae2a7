package scim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	serr "github.com/elimity-com/scim/errors"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/reqctx"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/scim/patch"
	"github.com/jmlgate/jmlgate/scim/resource"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// result is a committed write, ready to render.
type result struct {
	view   *view
	status int
}

// newID returns an RFC 9562 version 7 UUID: 48 bits of Unix milliseconds,
// then 74 random bits. Ids stay unguessable, and because they grow with
// time, every index keyed by id (resources, identities, audit by resource)
// takes a new resource at its right-hand edge instead of on a random page:
// a create dirties a few hot pages rather than one cold page per index.
func newID() string { return uuid7(time.Now()) }

func uuid7(t time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(t.UnixMilli())
	b[0], b[1], b[2] = byte(ms>>40), byte(ms>>32), byte(ms>>24)
	b[3], b[4], b[5] = byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func str(v any) string { s, _ := v.(string); return s }

// names derives the indexed columns of a normalized document.
func names(rt *schema.ResourceType, doc map[string]any) (name, display string) {
	if rt.Name == store.TypeUser {
		name = str(doc["userName"])
		display = str(doc["displayName"])
		if display == "" {
			display = name
		}
		return name, display
	}
	name = str(doc["displayName"])
	return name, name
}

func action(rt *schema.ResourceType, verb string) string {
	return "scim." + strings.ToLower(rt.Name) + "." + verb
}

// membersOf extracts and resolves a normalized group document's members:
// every value must name an existing User or Group, and a given type must be
// the real one. Duplicates collapse. known are the group's current members
// (nil on create), whose types the store already vouches for: only members
// being added are looked up, so a PATCH that adds one member to a large
// group costs one lookup, not one per member.
func membersOf(ctx context.Context, tx store.ReadTx, groupID string, doc map[string]any, known []store.Member) ([]store.Member, error) {
	raw, _ := doc["members"].([]any)
	knownType := make(map[string]string, len(known))
	for _, m := range known {
		knownType[m.Value] = m.Type
	}
	seen := make(map[string]bool, len(raw))
	out := make([]store.Member, 0, len(raw))
	for i, e := range raw {
		m, _ := e.(map[string]any)
		v := str(m["value"])
		if v == "" {
			return nil, badRequest(serr.ScimTypeInvalidValue, `attribute "members[%d].value" is required`, i)
		}
		if seen[v] {
			continue
		}
		seen[v] = true
		if v == groupID {
			return nil, badRequest(serr.ScimTypeInvalidValue, "a group cannot be a member of itself")
		}
		typ, err := knownType[v], error(nil)
		if typ == "" {
			if typ, err = resourceType(ctx, tx, v); err != nil {
				return nil, err
			}
		}
		if typ == "" {
			return nil, badRequest(serr.ScimTypeInvalidValue, "members[%d]: no User or Group with id %q", i, v)
		}
		if given := str(m["type"]); given != "" && !strings.EqualFold(given, typ) {
			return nil, badRequest(serr.ScimTypeInvalidValue, "members[%d]: %q is a %s, not a %s", i, v, typ, given)
		}
		out = append(out, store.Member{Value: v, Type: typ})
	}
	return out, nil
}

// resourceType returns the type of the resource with id v, or "".
func resourceType(ctx context.Context, tx store.ReadTx, v string) (string, error) {
	for _, t := range []string{store.TypeUser, store.TypeGroup} {
		if _, err := tx.GetResource(ctx, t, v); err == nil {
			return t, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	return "", nil
}

// auditState is what the audit digest covers: stored attributes plus, for
// groups, member ids, sorted so that one state always has one digest
// whether the members come from the store (ordered by value) or from a
// request body (in the client's order). Never the password (never stored).
func auditState(data json.RawMessage, members []store.Member) any {
	if members == nil {
		return data
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.Value
	}
	sort.Strings(ids)
	return map[string]any{"attributes": data, "members": ids}
}

// create stores a new resource from a client body. Atomic: resource,
// memberships and audit record commit together.
func (s *Server) create(ctx context.Context, rt *schema.ResourceType, body map[string]any, w want) (*result, error) {
	ctx = detach(ctx)
	doc, err := resource.Normalize(rt, body, resource.Create)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	data := storedData(doc)
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	name, display := names(rt, doc)
	res := &store.Resource{
		Type: rt.Name, ID: newID(), ExternalID: str(doc["externalId"]), Name: name, Display: display,
		Version: 1, Created: now, LastModified: now, Data: raw,
	}
	v := &view{res: res}
	err = s.cfg.Store.Update(ctx, func(tx store.Tx) error {
		var members []store.Member
		if rt.Name == store.TypeGroup {
			if members, err = membersOf(ctx, tx, res.ID, doc, nil); err != nil {
				return err
			}
		}
		if err := tx.CreateResource(ctx, res); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return errorf(http.StatusConflict, serr.ScimTypeUniqueness, "userName %s is already in use", quote(name))
			}
			return err
		}
		if len(members) > 0 {
			if err := tx.AddMembers(ctx, res.ID, members); err != nil {
				return err
			}
		}
		if _, err := audit.Append(ctx, tx, now, audit.Entry{
			Actor: reqctx.Actor(ctx), Action: action(rt, "create"), ResourceType: rt.Name, ResourceID: res.ID,
			RequestID: reqctx.RequestID(ctx), After: auditState(raw, membersOrNil(rt, members)),
		}); err != nil {
			return err
		}
		if rt.Name == store.TypeUser && s.cfg.Lifecycle != nil {
			if err := s.cfg.Lifecycle.UserCreated(ctx, tx, res.ID, data); err != nil {
				return err
			}
		} else if err := s.usersChanged(ctx, tx, userIDs(members)...); err != nil {
			return err
		}
		if w.members && len(members) > 0 {
			v.members, err = tx.Members(ctx, res.ID)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &result{view: v, status: http.StatusCreated}, nil
}

func membersOrNil(rt *schema.ResourceType, ms []store.Member) []store.Member {
	if rt.Name != store.TypeGroup {
		return nil
	}
	if ms == nil {
		return []store.Member{}
	}
	return ms
}

// usersChanged tells the lifecycle hook about each user among ids.
func (s *Server) usersChanged(ctx context.Context, tx store.Tx, ids ...string) error {
	if s.cfg.Lifecycle == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := s.cfg.Lifecycle.UserChanged(ctx, tx, id); err != nil {
			return err
		}
	}
	return nil
}

// userIDs lists the users among members.
func userIDs(ms ...[]store.Member) []string {
	var out []string
	for _, list := range ms {
		for _, m := range list {
			if m.Type == store.TypeUser {
				out = append(out, m.Value)
			}
		}
	}
	return out
}

// current is a resource as loaded for modification.
type current struct {
	res     *store.Resource
	data    map[string]any
	members []store.Member // groups only
}

func (s *Server) load(ctx context.Context, tx store.ReadTx, rt *schema.ResourceType, id, ifMatch string) (*current, error) {
	res, err := tx.GetResource(ctx, rt.Name, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(rt.Name, id)
	}
	if err != nil {
		return nil, err
	}
	if ifMatch != "" && !etagMatches(ifMatch, res.Version) {
		return nil, errorf(http.StatusPreconditionFailed, "", "%s %q is at version %s; If-Match asked for %s", rt.Name, id, etag(res.Version), ifMatch)
	}
	data, err := decodeDoc(res.Data)
	if err != nil {
		return nil, err
	}
	c := &current{res: res, data: data}
	if rt.Name == store.TypeGroup {
		if c.members, err = tx.Members(ctx, id); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// modify loads the resource, lets change compute the new normalized
// document, and writes it with its audit record, all in one transaction. An
// unchanged document writes nothing and returns the current state.
func (s *Server) modify(ctx context.Context, rt *schema.ResourceType, id, ifMatch, verb string, w want,
	change func(tx store.Tx, c *current) (map[string]any, error)) (*result, error) {
	ctx = detach(ctx)
	var v *view
	err := s.cfg.Store.Update(ctx, func(tx store.Tx) error {
		c, err := s.load(ctx, tx, rt, id, ifMatch)
		if err != nil {
			return err
		}
		doc, err := change(tx, c)
		if err != nil {
			return err
		}
		data := storedData(doc)
		var members []store.Member
		if rt.Name == store.TypeGroup {
			if members, err = membersOf(ctx, tx, id, doc, c.members); err != nil {
				return err
			}
		}
		res := c.res
		raw, err := json.Marshal(data)
		if err != nil {
			return err
		}
		// Stored data is json.Marshal of a map (sorted keys), so equal
		// documents are equal bytes.
		if !bytes.Equal(raw, res.Data) || !sameMembers(members, c.members) {
			name, display := names(rt, doc)
			now := s.now().UTC()
			upd := *res
			upd.ExternalID, upd.Name, upd.Display, upd.Data = str(doc["externalId"]), name, display, raw
			upd.Version, upd.LastModified = res.Version+1, now
			if err := tx.UpdateResource(ctx, &upd); err != nil {
				if errors.Is(err, store.ErrConflict) {
					if !strings.EqualFold(name, res.Name) {
						return errorf(http.StatusConflict, serr.ScimTypeUniqueness, "userName %s is already in use", quote(name))
					}
					return errorf(http.StatusPreconditionFailed, "", "%s %q was modified concurrently; retry", rt.Name, id)
				}
				return err
			}
			if rt.Name == store.TypeGroup {
				add, remove := diffMembers(c.members, members)
				if err := tx.RemoveMembers(ctx, id, remove); err != nil {
					return err
				}
				if err := tx.AddMembers(ctx, id, add); err != nil {
					return err
				}
			}
			if _, err := audit.Append(ctx, tx, now, audit.Entry{
				Actor: reqctx.Actor(ctx), Action: action(rt, verb), ResourceType: rt.Name, ResourceID: id,
				RequestID: reqctx.RequestID(ctx),
				Before:    auditState(res.Data, membersOrNil(rt, c.members)),
				After:     auditState(raw, membersOrNil(rt, members)),
			}); err != nil {
				return err
			}
			var affected []string
			switch {
			case rt.Name == store.TypeUser:
				if s.cfg.Lifecycle != nil {
					if err := s.cfg.Lifecycle.UserUpdated(ctx, tx, id, doc); err != nil {
						return err
					}
				}
			case name != res.Name:
				// Roles see group names: a rename concerns every member.
				affected = userIDs(c.members, members)
			default:
				add, _ := diffMembers(c.members, members)
				gone, _ := diffMembers(members, c.members) // members that left
				affected = userIDs(add, gone)
			}
			if err := s.usersChanged(ctx, tx, affected...); err != nil {
				return err
			}
			res = &upd
		}
		v, err = fetch(ctx, tx, res, w)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &result{view: v, status: http.StatusOK}, nil
}

func sameMembers(a, b []store.Member) bool {
	add, remove := diffMembers(a, b)
	return len(add) == 0 && len(remove) == 0
}

// diffMembers returns what to add and remove to turn from into to.
func diffMembers(from, to []store.Member) (add []store.Member, remove []string) {
	had := make(map[string]bool, len(from))
	for _, m := range from {
		had[m.Value] = true
	}
	keep := make(map[string]bool, len(to))
	for _, m := range to {
		keep[m.Value] = true
		if !had[m.Value] {
			add = append(add, m)
		}
	}
	for _, m := range from {
		if !keep[m.Value] {
			remove = append(remove, m.Value)
		}
	}
	return add, remove
}

// replace is PUT: the body replaces every writable attribute; readOnly
// attributes in the body are ignored.
func (s *Server) replace(ctx context.Context, rt *schema.ResourceType, id string, body map[string]any, ifMatch string, w want) (*result, error) {
	doc, err := resource.Normalize(rt, body, resource.Replace)
	if err != nil {
		return nil, err
	}
	if bid := str(body["id"]); bid != "" && bid != id {
		return nil, badRequest(serr.ScimTypeMutability, "id %q in the body does not match %q in the path", bid, id)
	}
	return s.modify(ctx, rt, id, ifMatch, "replace", w, func(_ store.Tx, c *current) (map[string]any, error) {
		// immutable attributes keep their value once set (RFC 7643 §2.2).
		if err := checkImmutable(rt, c.data, doc); err != nil {
			return nil, err
		}
		return doc, nil
	})
}

func checkImmutable(rt *schema.ResourceType, before, after map[string]any) error {
	for _, a := range rt.Core.Attrs {
		if a.Mutability != "immutable" {
			continue
		}
		if old, ok := before[a.Name]; ok && !reflect.DeepEqual(old, after[a.Name]) {
			return badRequest(serr.ScimTypeMutability, "attribute %q is immutable", a.Name)
		}
	}
	return nil
}

// patchDoc applies a PATCH body. The patched document is re-validated as a
// whole, so PATCH can never store what PUT would refuse.
func (s *Server) patchDoc(ctx context.Context, rt *schema.ResourceType, id string, body []byte, ifMatch string, w want) (*result, error) {
	var req patch.Request
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return s.modify(ctx, rt, id, ifMatch, "patch", w, func(_ store.Tx, c *current) (map[string]any, error) {
		doc := resource.Clone(c.data)
		if rt.Name == store.TypeGroup && len(c.members) > 0 {
			ms := make([]any, len(c.members))
			for i, m := range c.members {
				ms[i] = map[string]any{"value": m.Value, "type": m.Type}
			}
			doc["members"] = ms
		}
		patched, changed, err := patch.Apply(rt, doc, req.Operations)
		if err != nil {
			return nil, err
		}
		if !changed {
			patched = doc
		}
		return resource.Normalize(rt, patched, resource.Replace)
	})
}

// remove deletes a resource. Groups that listed it lose it as a member in
// the same transaction, and each such group gets a new version and its own
// audit record, so its ETag and its digest chain stay true.
func (s *Server) remove(ctx context.Context, rt *schema.ResourceType, id, ifMatch string) error {
	ctx = detach(ctx)
	return s.cfg.Store.Update(ctx, func(tx store.Tx) error {
		c, err := s.load(ctx, tx, rt, id, ifMatch)
		if err != nil {
			return err
		}
		parents, err := tx.GroupsOf(ctx, id)
		if err != nil {
			return err
		}
		before := make(map[string][]store.Member, len(parents))
		for _, g := range parents {
			if before[g.ID], err = tx.Members(ctx, g.ID); err != nil {
				return err
			}
		}
		if err := tx.DeleteResource(ctx, rt.Name, id); err != nil {
			return err
		}
		now := s.now().UTC()
		if _, err := audit.Append(ctx, tx, now, audit.Entry{
			Actor: reqctx.Actor(ctx), Action: action(rt, "delete"), ResourceType: rt.Name, ResourceID: id,
			RequestID: reqctx.RequestID(ctx), Before: auditState(c.res.Data, membersOrNil(rt, c.members)),
		}); err != nil {
			return err
		}
		for _, g := range parents {
			if err := s.memberGone(ctx, tx, g.ID, id, before[g.ID], now); err != nil {
				return err
			}
		}
		if rt.Name == store.TypeUser {
			return s.usersChanged(ctx, tx, id)
		}
		return s.usersChanged(ctx, tx, userIDs(c.members)...)
	})
}

// memberGone records that group lost member because the member was
// deleted: a new version of the group and an audit record
// "scim.group.member.remove".
func (s *Server) memberGone(ctx context.Context, tx store.Tx, groupID, member string, before []store.Member, now time.Time) error {
	g, err := tx.GetResource(ctx, store.TypeGroup, groupID)
	if err != nil {
		return err
	}
	after := make([]store.Member, 0, len(before))
	for _, m := range before {
		if m.Value != member {
			after = append(after, m)
		}
	}
	upd := *g
	upd.Version, upd.LastModified = g.Version+1, now
	if err := tx.UpdateResource(ctx, &upd); err != nil {
		return err
	}
	_, err = audit.Append(ctx, tx, now, audit.Entry{
		Actor: reqctx.Actor(ctx), Action: "scim.group.member.remove", ResourceType: store.TypeGroup, ResourceID: groupID,
		RequestID: reqctx.RequestID(ctx), Before: auditState(g.Data, before), After: auditState(g.Data, after),
	})
	return err
}

// write runs one write request: body read under the limit, op, then the
// representation the projection asks for.
func (s *Server) write(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType,
	op func(body []byte, q projection) (*result, error)) {
	b, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := projectionFrom(r)
	res, err := op(b, q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.respond(w, r, rt, res, q)
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType) {
	s.write(w, r, rt, func(b []byte, q projection) (*result, error) {
		body, err := decodeObject(b)
		if err != nil {
			return nil, err
		}
		return s.create(r.Context(), rt, body, s.wantFor(rt, q))
	})
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType, id string) {
	q := projectionFrom(r)
	var v *view
	var version int64
	err := s.cfg.Store.View(r.Context(), func(tx store.ReadTx) error {
		res, err := tx.GetResource(r.Context(), rt.Name, id)
		if errors.Is(err, store.ErrNotFound) {
			return notFound(rt.Name, id)
		}
		if err != nil {
			return err
		}
		version = res.Version
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, version) {
			return nil
		}
		v, err = fetch(r.Context(), tx, res, s.wantFor(rt, q))
		return err
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if v == nil {
		w.Header().Set("ETag", etag(version))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.respond(w, r, rt, &result{view: v, status: http.StatusOK}, q)
}

func (s *Server) handleReplace(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType, id string) {
	s.write(w, r, rt, func(b []byte, q projection) (*result, error) {
		body, err := decodeObject(b)
		if err != nil {
			return nil, err
		}
		return s.replace(r.Context(), rt, id, body, r.Header.Get("If-Match"), s.wantFor(rt, q))
	})
}

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType, id string) {
	s.write(w, r, rt, func(b []byte, q projection) (*result, error) {
		return s.patchDoc(r.Context(), rt, id, b, r.Header.Get("If-Match"), s.wantFor(rt, q))
	})
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, rt *schema.ResourceType, id string) {
	if err := s.remove(r.Context(), rt, id, r.Header.Get("If-Match")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
