package roles

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/jmlgate/jmlgate/scim/resource"
	"github.com/jmlgate/jmlgate/scim/schema"
)

// decode parses a JSON document as the SCIM layer does (numbers as
// json.Number).
func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Bodies as the identity providers send them (see scim/testdata).
const (
	// Microsoft Entra ID: enterprise extension nested, manager as a bare
	// id, booleans as strings, lifecycle dates via a custom mapping.
	entraBody = `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
	              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
	              "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User"],
	  "externalId": "alice.ng",
	  "userName": "Alice.Ng@Contoso.example",
	  "active": "True",
	  "displayName": "Alice Ng",
	  "title": "Senior Site Reliability Engineer",
	  "userType": "Member",
	  "emails": [
	    {"primary": true, "type": "work", "value": "Alice.Ng@Contoso.example"},
	    {"type": "other", "value": "alice@personal.example"},
	    {"type": "home", "value": "ALICE.NG@contoso.example"}
	  ],
	  "meta": {"resourceType": "User"},
	  "name": {"formatted": "Alice Ng", "familyName": "Ng", "givenName": "Alice"},
	  "roles": [],
	  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
	    "employeeNumber": "100231",
	    "department": "Platform",
	    "costCenter": "CC-4100",
	    "manager": "7d5c1f0e-2b7a-4a44-9f2e-1c4b8a6f9d10"
	  },
	  "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User": {
	    "startDate": "2026-09-01T09:00:00+02:00",
	    "endDate": "2027-08-31T18:00:00"
	  }
	}`
	// Okta: core schema only listed, enterprise attributes as URN-qualified
	// flat keys, manager as {"value", "displayName"}, readOnly groups.
	oktaBody = `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	  "userName": "test.user@okta.local",
	  "name": {"givenName": "Test", "familyName": "User"},
	  "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
	  "displayName": "Test User",
	  "locale": "en-US",
	  "externalId": "00ujl29u0le5T6Aj10h7",
	  "groups": [],
	  "password": "fixture-not-a-secret-1mz050nq",
	  "active": true,
	  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division": "Revenue",
	  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization": "Okta Test Org",
	  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": {"value": "00u1mgr", "displayName": "Boss"},
	  "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User:startDate": "2026-10-01T00:00:00Z"
	}`
)

func TestUserFromSCIM(t *testing.T) {
	t.Parallel()
	rt := schema.New().User
	tests := []struct {
		name   string
		body   string
		raw    bool // use the body as the document without normalizing
		groups []string
		want   User
	}{
		{"Entra create", entraBody, false, []string{"sre", "Platform Team"}, User{
			UserName:       "Alice.Ng@Contoso.example",
			DisplayName:    "Alice Ng",
			Title:          "Senior Site Reliability Engineer",
			UserType:       "Member",
			Active:         true,
			Emails:         []string{"alice.ng@contoso.example", "alice@personal.example"},
			Department:     "Platform",
			CostCenter:     "CC-4100",
			EmployeeNumber: "100231",
			Manager:        "7d5c1f0e-2b7a-4a44-9f2e-1c4b8a6f9d10",
			Groups:         []string{"sre", "Platform Team"},
			StartDate:      ts("2026-09-01T07:00:00Z"),
			EndDate:        ts("2027-08-31T18:00:00Z"),
		}},
		{"Okta create", oktaBody, false, nil, User{
			UserName:     "test.user@okta.local",
			DisplayName:  "Test User",
			Active:       true,
			Emails:       []string{"test.user@okta.local"},
			Division:     "Revenue",
			Organization: "Okta Test Org",
			Manager:      "00u1mgr",
			Groups:       []string{},
			StartDate:    ts("2026-10-01T00:00:00Z"),
		}},
		{"minimal user", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"}`, false, nil, User{
			UserName: "x", Emails: []string{}, Groups: []string{},
		}},
		{"inactive", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "active": "False"}`, false, []string{}, User{
			UserName: "x", Emails: []string{}, Groups: []string{},
		}},
		{"empty document", `{}`, true, nil, User{Emails: []string{}, Groups: []string{}}},
		{"wrong types read as absent", `{
		  "userName": 5, "active": "yes", "emails": "a@b", "title": ["x"],
		  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": "bare-id", "department": {"x": 1}},
		  "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User": {"startDate": "next monday", "endDate": 20270101}
		}`, true, nil, User{Emails: []string{}, Groups: []string{}}},
		{"emails without values, fractional and offset dates", `{
		  "emails": [{"type": "work"}, {"value": ""}, "not-an-object", {"value": "B@X.example"}],
		  "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User": {"startDate": "2026-01-02T03:04:05.5-05:00"}
		}`, true, nil, User{Emails: []string{"b@x.example"}, Groups: []string{}, StartDate: ts("2026-01-02T08:04:05.5Z")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := decode(t, tt.body)
			if !tt.raw {
				var err error
				if doc, err = resource.Normalize(rt, doc, resource.Create); err != nil {
					t.Fatalf("Normalize: %v", err)
				}
			}
			before, _ := json.Marshal(doc)
			got := UserFromSCIM(doc, tt.groups)
			if !reflect.DeepEqual(got, tt.want) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(tt.want)
				t.Errorf("UserFromSCIM =\n%s\nwant\n%s", gj, wj)
			}
			if after, _ := json.Marshal(doc); !bytes.Equal(before, after) {
				t.Error("UserFromSCIM modified the document")
			}
			if len(tt.groups) > 0 {
				tt.groups[0] = "changed"
				if got.Groups[0] == "changed" {
					t.Error("User shares the groups slice with the caller")
				}
			}
		})
	}
}

func TestUserJSON(t *testing.T) {
	t.Parallel()
	got, err := json.Marshal(UserFromSCIM(decode(t, `{"userName": "x", "urn:jmlgate:params:scim:schemas:extension:lifecycle:2.0:User": {"endDate": "2027-01-31T00:00:00Z"}}`), nil))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"userName":"x","displayName":"","title":"","userType":"","active":false,"emails":[],"department":"","division":"","organization":"","costCenter":"","employeeNumber":"","manager":"","groups":[],"startDate":null,"endDate":"2027-01-31T00:00:00Z"}`
	if string(got) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", got, want)
	}
}

// TestUserFieldsMatchCEL guards the two views of a user: every JSON name
// of User is a CEL field of jmlgate.User and the reverse.
func TestUserFieldsMatchCEL(t *testing.T) {
	t.Parallel()
	ut, ct := reflect.TypeFor[User](), reflect.TypeFor[celUser]()
	if ut.NumField() != ct.NumField() {
		t.Fatalf("User has %d fields, celUser %d", ut.NumField(), ct.NumField())
	}
	for i := range ut.NumField() {
		uf, cf := ut.Field(i), ct.Field(i)
		if uf.Name != cf.Name || uf.Tag.Get("json") != cf.Tag.Get("cel") {
			t.Errorf("field %d: User.%s json %q, celUser.%s cel %q", i, uf.Name, uf.Tag.Get("json"), cf.Name, cf.Tag.Get("cel"))
		}
	}
}
