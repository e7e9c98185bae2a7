package scim

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/jmlgate/jmlgate/scim/schema"
)

// serviceProviderConfig advertises exactly what this server implements
// (RFC 7643 §5).
func (s *Server) serviceProviderConfig(r *http.Request) map[string]any {
	return map[string]any{
		"schemas":          []string{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		"documentationUri": "https://github.com/jmlgate/jmlgate#readme",
		"patch":            map[string]any{"supported": true},
		"bulk": map[string]any{
			"supported":      true,
			"maxOperations":  s.cfg.BulkMaxOperations,
			"maxPayloadSize": s.cfg.BulkMaxPayload,
		},
		"filter":         map[string]any{"supported": true, "maxResults": s.cfg.MaxResults},
		"changePassword": map[string]any{"supported": false},
		"sort":           map[string]any{"supported": true},
		"etag":           map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{
			"type":        "oauthbearertoken",
			"name":        "Bearer token",
			"description": "A static API token (jmlgate token create) or a JWT from a configured issuer, sent as Authorization: Bearer.",
			"primary":     true,
		}},
		"meta": map[string]any{
			"resourceType": "ServiceProviderConfig",
			"location":     s.baseURL(r) + "/ServiceProviderConfig",
		},
	}
}

func (s *Server) handleServiceProviderConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.serviceProviderConfig(r))
}

func (s *Server) resourceTypeDoc(r *http.Request, rt *schema.ResourceType) map[string]any {
	exts := make([]any, 0, len(rt.Extensions))
	for _, e := range rt.Extensions {
		exts = append(exts, map[string]any{"schema": e.ID, "required": false})
	}
	doc := map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:ResourceType"},
		"id":          rt.Name,
		"name":        rt.Name,
		"endpoint":    rt.Endpoint,
		"description": rt.Description,
		"schema":      rt.Core.ID,
		"meta": map[string]any{
			"resourceType": "ResourceType",
			"location":     s.baseURL(r) + "/ResourceTypes/" + rt.Name,
		},
	}
	if len(exts) > 0 {
		doc["schemaExtensions"] = exts
	}
	return doc
}

func listResponse(items []any) map[string]any {
	return map[string]any{
		"schemas":      []string{schema.ListResponseURN},
		"totalResults": len(items),
		"startIndex":   1,
		"itemsPerPage": len(items),
		"Resources":    items,
	}
}

func (s *Server) handleResourceTypes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, listResponse([]any{s.resourceTypeDoc(r, s.reg.User), s.resourceTypeDoc(r, s.reg.Group)}))
}

func (s *Server) handleResourceType(w http.ResponseWriter, r *http.Request) {
	rt := s.reg.ByName(r.PathValue("name"))
	if rt == nil {
		WriteError(w, notFound("ResourceType", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, s.resourceTypeDoc(r, rt))
}

// schemaDoc renders sc with an absolute meta.location, as every other
// resource here has (RFC 7643 §3.1: location is the URI of the resource,
// honouring Config.BaseURL); schema.Schema's own JSON only knows the path.
func (s *Server) schemaDoc(r *http.Request, sc *schema.Schema) (map[string]any, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	doc, err := decodeDoc(b)
	if err != nil {
		return nil, err
	}
	doc["meta"] = map[string]any{"resourceType": "Schema", "location": s.baseURL(r) + "/Schemas/" + sc.ID}
	return doc, nil
}

func (s *Server) handleSchemas(w http.ResponseWriter, r *http.Request) {
	all := s.reg.All()
	items := make([]any, len(all))
	for i, sc := range all {
		doc, err := s.schemaDoc(r, sc)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		items[i] = doc
	}
	writeJSON(w, http.StatusOK, listResponse(items))
}

func (s *Server) handleSchema(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, sc := range s.reg.All() {
		if strings.EqualFold(sc.ID, id) {
			doc, err := s.schemaDoc(r, sc)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, doc)
			return
		}
	}
	WriteError(w, notFound("Schema", id))
}
