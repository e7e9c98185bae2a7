package scim_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/jmlgate/jmlgate/scim"
)

func TestServerDiscovery(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, func(c *scim.Config) {
		c.MaxResults = 50
		c.BulkMaxOperations = 7
		c.BulkMaxPayload = 12345
	})

	t.Run("ServiceProviderConfig", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, "/ServiceProviderConfig", nil).want(t, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); ct != "application/scim+json" {
			t.Errorf("Content-Type = %q", ct)
		}
		want := map[string]any{
			"schemas":        []any{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
			"patch":          map[string]any{"supported": true},
			"bulk":           map[string]any{"supported": true, "maxOperations": json.Number("7"), "maxPayloadSize": json.Number("12345")},
			"filter":         map[string]any{"supported": true, "maxResults": json.Number("50")},
			"changePassword": map[string]any{"supported": false},
			"sort":           map[string]any{"supported": true},
			"etag":           map[string]any{"supported": true},
			"meta":           map[string]any{"resourceType": "ServiceProviderConfig", "location": env.base + "/ServiceProviderConfig"},
		}
		for k, v := range want {
			if !reflect.DeepEqual(r.Body[k], v) {
				t.Errorf("%s = %v, want %v", k, r.Body[k], v)
			}
		}
		schemes := asList(r.Body["authenticationSchemes"])
		if len(schemes) == 0 || get(schemes, 0, "type") != "oauthbearertoken" {
			t.Errorf("authenticationSchemes = %v", r.Body["authenticationSchemes"])
		}
	})

	userRT := map[string]any{
		"schemas":     []any{"urn:ietf:params:scim:schemas:core:2.0:ResourceType"},
		"id":          "User",
		"name":        "User",
		"endpoint":    "/Users",
		"schema":      userURN,
		"description": "User accounts pushed by HR and identity providers",
		"schemaExtensions": []any{
			map[string]any{"schema": enterpriseURN, "required": false},
			map[string]any{"schema": lifecycleURN, "required": false},
		},
		"meta": map[string]any{"resourceType": "ResourceType", "location": env.base + "/ResourceTypes/User"},
	}

	t.Run("ResourceTypes", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, "/ResourceTypes", nil).want(t, http.StatusOK)
		if !reflect.DeepEqual(r.Body["schemas"], []any{listURN}) || r.Body["totalResults"] != json.Number("2") {
			t.Errorf("envelope = %s", r.Raw)
		}
		res := asList(r.Body["Resources"])
		if len(res) != 2 {
			t.Fatalf("Resources = %v", res)
		}
		if !reflect.DeepEqual(res[0], userRT) {
			t.Errorf("User = %v\nwant   %v", res[0], userRT)
		}
		g := res[1].(map[string]any)
		if g["id"] != "Group" || g["endpoint"] != "/Groups" || g["schema"] != groupURN || g["schemaExtensions"] != nil {
			t.Errorf("Group = %v", g)
		}
		if metaOf(g, "location") != env.base+"/ResourceTypes/Group" {
			t.Errorf("Group location = %q", metaOf(g, "location"))
		}
	})

	t.Run("ResourceTypes/User", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, "/ResourceTypes/User", nil).want(t, http.StatusOK)
		if !reflect.DeepEqual(r.Body, userRT) {
			t.Errorf("User = %s", r.Raw)
		}
	})

	t.Run("Schemas", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, "/Schemas", nil).want(t, http.StatusOK)
		if !reflect.DeepEqual(r.Body["schemas"], []any{listURN}) || r.Body["totalResults"] != json.Number("4") {
			t.Errorf("envelope = %s", r.Raw)
		}
		var ids []string
		for _, s := range asList(r.Body["Resources"]) {
			id, _ := get(s, "id").(string)
			ids = append(ids, id)
			if loc := metaOf(s.(map[string]any), "location"); loc != env.base+"/Schemas/"+id {
				t.Errorf("%s meta.location = %q, want %q", id, loc, env.base+"/Schemas/"+id)
			}
			if !reflect.DeepEqual(get(s, "schemas"), []any{"urn:ietf:params:scim:schemas:core:2.0:Schema"}) {
				t.Errorf("%s schemas = %v", id, get(s, "schemas"))
			}
		}
		if want := []string{userURN, groupURN, enterpriseURN, lifecycleURN}; !reflect.DeepEqual(ids, want) {
			t.Errorf("schema ids = %v, want %v", ids, want)
		}
	})

	for _, tc := range []struct {
		urn   string
		attr  string
		check map[string]any
	}{
		{userURN, "userName", map[string]any{"type": "string", "required": true, "uniqueness": "server", "caseExact": false}},
		{userURN, "password", map[string]any{"mutability": "writeOnly", "returned": "never"}},
		{groupURN, "members", map[string]any{"multiValued": true}},
		{enterpriseURN, "department", map[string]any{"type": "string"}},
		{lifecycleURN, "startDate", map[string]any{"type": "dateTime"}},
	} {
		t.Run("Schemas/"+tc.urn+"/"+tc.attr, func(t *testing.T) {
			t.Parallel()
			r := env.do(http.MethodGet, "/Schemas/"+tc.urn, nil).want(t, http.StatusOK)
			if r.Body["id"] != tc.urn {
				t.Fatalf("id = %v", r.Body["id"])
			}
			var attr map[string]any
			for _, a := range asList(r.Body["attributes"]) {
				if get(a, "name") == tc.attr {
					attr = a.(map[string]any)
				}
			}
			if attr == nil {
				t.Fatalf("no attribute %q in %s", tc.attr, r.Raw)
			}
			for k, v := range tc.check {
				if attr[k] != v {
					t.Errorf("%s.%s = %v, want %v", tc.attr, k, attr[k], v)
				}
			}
		})
	}

	for _, path := range []string{"/Schemas/urn:example:nope", "/ResourceTypes/Widget"} {
		t.Run("404 "+path, func(t *testing.T) {
			t.Parallel()
			env.do(http.MethodGet, path, nil).wantError(t, http.StatusNotFound, "")
		})
	}
}
