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

// render builds the full SCIM representation of res: stored data, id, meta
// and (when w asks) groups or members read through tx.
func (s *Server) render(ctx context.Context, tx store.ReadTx, rt *schema.ResourceType, res *store.Resource, base string, w want) (map[string]any, error) {
	doc, err := decodeDoc(res.Data)
	if err != nil {
		return nil, err
	}
	doc["id"] = res.ID
	doc["meta"] = map[string]any{
		"resourceType": rt.Name,
		"created":      res.Created.UTC().Format(time.RFC3339Nano),
		"lastModified": res.LastModified.UTC().Format(time.RFC3339Nano),
		"location":     base + rt.Endpoint + "/" + res.ID,
		"version":      etag(res.Version),
	}
	if w.groups {
		gs, err := tx.GroupsOf(ctx, res.ID)
		if err != nil {
			return nil, err
		}
		if len(gs) > 0 {
			list := make([]any, len(gs))
			for i, g := range gs {
				list[i] = map[string]any{"value": g.ID, "display": g.Display, "$ref": base + "/Groups/" + g.ID, "type": "direct"}
			}
			doc["groups"] = list
		}
	}
	if w.members {
		ms, err := tx.Members(ctx, res.ID)
		if err != nil {
			return nil, err
		}
		if len(ms) > 0 {
			doc["members"] = membersDoc(ms, base)
		}
	}
	return doc, nil
}

func membersDoc(ms []store.Member, base string) []any {
	list := make([]any, len(ms))
	for i, m := range ms {
		e := map[string]any{"value": m.Value, "type": m.Type, "$ref": base + "/" + m.Type + "s/" + m.Value}
		if m.Display != "" {
			e["display"] = m.Display
		}
		list[i] = e
	}
	return list
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
