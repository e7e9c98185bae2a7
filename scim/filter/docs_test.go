package filter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/scim/schema"
)

var registry = schema.New()

// decode decodes a document the way the server does: UseNumber.
func decode(tb testing.TB, s string) map[string]any {
	tb.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		tb.Fatalf("decode: %v", err)
	}
	return m
}

// bjensen is an active employee with the enterprise and lifecycle
// extensions.
const bjensenJSON = `{
  "schemas": [
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User"
  ],
  "id": "2819c223-7f76-453a-919d-413861904646",
  "externalId": "EMP-0042",
  "userName": "Bjensen@Example.com",
  "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara"},
  "displayName": "Babs Jensen",
  "title": "Tour Guide",
  "userType": "Employee",
  "active": true,
  "emails": [
    {"value": "bjensen@example.com", "type": "work", "primary": true},
    {"value": "babs@jensen.org", "type": "home"}
  ],
  "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
  "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides"}],
  "meta": {
    "resourceType": "User",
    "created": "2024-03-01T09:00:00Z",
    "lastModified": "2025-06-15T12:30:00.5+02:00",
    "version": "W/\"3\"",
    "location": "https://jmlgate.example.com/scim/v2/Users/2819c223-7f76-453a-919d-413861904646"
  },
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "701984",
    "costCenter": "4130",
    "department": "Tour Operations",
    "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
  },
  "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User": {
    "startDate": "2024-03-04T00:00:00Z",
    "endDate": "2025-12-31T17:00:00-05:00"
  }
}`

// leaver is a deactivated user with few attributes, a non-ASCII name and
// an empty email list.
const leaverJSON = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "id": "b7c1e6a0-0000-4000-8000-000000000001",
  "userName": "zoe.aerosk@example.com",
  "displayName": "Zoë Ærøskøbing",
  "title": "",
  "active": false,
  "emails": [],
  "name": {},
  "meta": {"resourceType": "User", "created": "2023-01-10T08:00:00Z", "lastModified": "2024-12-31T23:59:59Z"}
}`

// oddJSON has values of the wrong type, as a lax client might send before
// validation.
const oddJSON = `{
  "id": "odd",
  "userName": 42,
  "active": "true",
  "emails": [null, "not-an-object", {"value": 7}, {"type": "WORK", "value": "odd@EXAMPLE.com"}],
  "meta": {"created": "yesterday", "lastModified": null},
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": "not an object"
}`

const groupJSON = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
  "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
  "externalId": "grp-tour",
  "displayName": "Tour Guides",
  "members": [
    {"value": "2819c223-7f76-453a-919d-413861904646", "$ref": "https://jmlgate.example.com/scim/v2/Users/2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen", "type": "User"},
    {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge", "type": "User"}
  ],
  "meta": {"resourceType": "Group", "created": "2020-01-01T00:00:00Z", "lastModified": "2025-02-01T00:00:00Z"}
}`
