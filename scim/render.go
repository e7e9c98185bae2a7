package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// ContentType is the media type of every SCIM response (RFC 7644 §3.1).
const ContentType = "application/scim+json"

// etag renders a resource version as a weak entity tag.
func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// etagMatches reports whether an If-Match / If-None-Match header value
// names version. It accepts "*", weak and strong forms and lists.
func etagMatches(header string, version int64) bool {
	want := strconv.FormatInt(version, 10)
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		if strings.Trim(t, `"`) == want {
			return true
		}
	}
	return false
}

// decodeDoc decodes stored resource data.
func decodeDoc(data []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode stored resource: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// storedData is the part of a normalized document kept in Resource.Data:
// everything but server-computed attributes. Passwords are accepted but
// never stored (jmlgate provisions accounts; it does not hold HR passwords).
func storedData(doc map[string]any) map[string]any {
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		switch k {
		case "id", "meta", "groups", "members", "password":
			continue
		}
		out[k] = v
	}
	return out
}

// baseURL returns the absolute prefix for meta.location.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return strings.TrimSuffix(s.cfg.BaseURL, "/") + Prefix
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + Prefix
}

// want says which server-computed, separately stored attributes a rendering
// needs; skipping them saves queries (excludedAttributes=members).
type want struct {
	groups  bool
	members bool
}

func (s *Server) wantFor(rt *schema.ResourceType, q projection) want {
	return want{
		groups:  rt.Name == store.TypeUser && q.includes(rt, "groups"),
		members: rt.Name == store.TypeGroup && q.includes(rt, "members"),
	}
}

// view is a stored resource with the relations its rendering needs.
type view struct {
	res     *store.Resource
	groups  []store.GroupRef // users; nil when not fetched or none
	members []store.Member   // groups; nil when not fetched or none
}

// fetch reads what w asks for about res.
func fetch(ctx context.Context, tx store.ReadTx, res *store.Resource, w want) (*view, error) {
	v := &view{res: res}
	var err error
	switch {
	case w.groups && res.GroupsRead:
		v.groups = res.Groups
	case w.groups:
		v.groups, err = tx.GroupsOf(ctx, res.ID)
	}
	if err == nil && w.members {
		v.members, err = tx.Members(ctx, res.ID)
	}
	return v, err
}

// fetchPage is fetch for a page of resources, with one query for all the
// users' groups.
func fetchPage(ctx context.Context, tx store.ReadTx, rs []*store.Resource, w want) ([]*view, error) {
	out := make([]*view, len(rs))
	var groups map[string][]store.GroupRef
	if w.groups && len(rs) > 1 && !rs[0].GroupsRead {
		ids := make([]string, len(rs))
		for i, r := range rs {
			ids[i] = r.ID
		}
		var err error
		if groups, err = tx.GroupsOfEach(ctx, ids); err != nil {
			return nil, err
		}
	}
	for i, r := range rs {
		if groups != nil {
			out[i] = &view{res: r, groups: groups[r.ID]}
			continue
		}
		v, err := fetch(ctx, tx, r, w)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

type metaJSON struct {
	ResourceType string `json:"resourceType"`
	Created      string `json:"created"`
	LastModified string `json:"lastModified"`
	Location     string `json:"location"`
	Version      string `json:"version"`
}

type groupRefJSON struct {
	Value   string `json:"value"`
	Display string `json:"display"`
	Ref     string `json:"$ref"`
	Type    string `json:"type"`
}

type memberJSON struct {
	Value   string `json:"value"`
	Type    string `json:"type"`
	Ref     string `json:"$ref"`
	Display string `json:"display,omitempty"`
}

func (v *view) meta(rt *schema.ResourceType, base string) metaJSON {
	return metaJSON{
		ResourceType: rt.Name,
		Created:      v.res.Created.UTC().Format(time.RFC3339Nano),
		LastModified: v.res.LastModified.UTC().Format(time.RFC3339Nano),
		Location:     base + rt.Endpoint + "/" + v.res.ID,
		Version:      etag(v.res.Version),
	}
}

func (v *view) relations(base string) (groups []groupRefJSON, members []memberJSON) {
	for _, g := range v.groups {
		groups = append(groups, groupRefJSON{Value: g.ID, Display: g.Display, Ref: base + "/Groups/" + g.ID, Type: "direct"})
	}
	for _, m := range v.members {
		members = append(members, memberJSON{Value: m.Value, Type: m.Type, Ref: base + "/" + m.Type + "s/" + m.Value, Display: m.Display})
	}
	return groups, members
}

// appendJSON appends the full representation by splicing the stored JSON
// object after the server-computed attributes: no decode, no re-encode.
// storedData guarantees the stored object never holds id, meta, groups or
// members, so no key repeats.
func (v *view) appendJSON(dst []byte, rt *schema.ResourceType, base string) ([]byte, error) {
	head := struct {
		ID      string         `json:"id"`
		Meta    metaJSON       `json:"meta"`
		Groups  []groupRefJSON `json:"groups,omitempty"`
		Members []memberJSON   `json:"members,omitempty"`
	}{ID: v.res.ID, Meta: v.meta(rt, base)}
	head.Groups, head.Members = v.relations(base)
	b, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	data := bytes.TrimSpace(v.res.Data)
	if len(data) < 2 || data[0] != '{' {
		return nil, fmt.Errorf("stored %s %q is not a JSON object", rt.Name, v.res.ID)
	}
	dst = append(dst, b[:len(b)-1]...) // without the closing brace
	if len(bytes.TrimSpace(data[1:len(data)-1])) > 0 {
		dst = append(dst, ',')
		dst = append(dst, data[1:]...)
	} else {
		dst = append(dst, '}')
	}
	return dst, nil
}

// doc builds the full representation as a map, for filter matching and
// projection.
func (v *view) doc(rt *schema.ResourceType, base string) (map[string]any, error) {
	doc, err := decodeDoc(v.res.Data)
	if err != nil {
		return nil, err
	}
	m := v.meta(rt, base)
	doc["id"] = v.res.ID
	doc["meta"] = map[string]any{
		"resourceType": m.ResourceType, "created": m.Created, "lastModified": m.LastModified,
		"location": m.Location, "version": m.Version,
	}
	groups, members := v.relations(base)
	if len(groups) > 0 {
		list := make([]any, len(groups))
		for i, g := range groups {
			list[i] = map[string]any{"value": g.Value, "display": g.Display, "$ref": g.Ref, "type": g.Type}
		}
		doc["groups"] = list
	}
	if len(members) > 0 {
		list := make([]any, len(members))
		for i, mb := range members {
			e := map[string]any{"value": mb.Value, "type": mb.Type, "$ref": mb.Ref}
			if mb.Display != "" {
				e["display"] = mb.Display
			}
			list[i] = e
		}
		doc["members"] = list
	}
	return doc, nil
}

// encode renders v for the response: spliced when there is no projection,
// else through resource.Project.
func (v *view) encode(dst []byte, rt *schema.ResourceType, base string, q projection) ([]byte, error) {
	if q.empty() {
		return v.appendJSON(dst, rt, base)
	}
	doc, err := v.doc(rt, base)
	if err != nil {
		return nil, err
	}
	out, err := q.apply(rt, doc)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}

// writeRaw writes an already encoded SCIM response body.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeJSON writes v as a SCIM response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"500","detail":"response encoding failed"}`)
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// WriteError writes err in the SCIM error schema. Exported so the HTTP layer
// can answer authentication, rate-limit and body-limit failures on SCIM
// routes in the same format.
func WriteError(w http.ResponseWriter, err *Error) {
	writeJSON(w, err.Status, err)
}
