package filter

import (
	"reflect"
	"testing"

	"github.com/jmlgate/jmlgate/scim/schema"
)

func TestIndexTerms(t *testing.T) {
	t.Parallel()
	user, group := registry.User, registry.Group
	tests := []struct {
		rt     *schema.ResourceType
		filter string
		want   []IndexTerm
	}{
		{user, `userName eq "Bjensen"`, []IndexTerm{{"userName", "Bjensen"}}},
		{user, `USERNAME EQ "Bjensen"`, []IndexTerm{{"userName", "Bjensen"}}},
		{user, `urn:ietf:params:scim:schemas:core:2.0:User:userName eq "b"`, []IndexTerm{{"userName", "b"}}},
		{user, `URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:ExternalID eq "E1"`, []IndexTerm{{"externalId", "E1"}}},
		{user, `externalId eq "E1" and active eq true and id eq "abc"`, []IndexTerm{{"externalId", "E1"}, {"id", "abc"}}},
		{user, `(userName eq "a" and id eq "b") and title pr`, []IndexTerm{{"userName", "a"}, {"id", "b"}}},
		{user, `title pr and (userName eq "a" and (id eq "b"))`, []IndexTerm{{"userName", "a"}, {"id", "b"}}},
		{user, `userName eq "a" or userName eq "b"`, nil},
		{user, `(userName eq "a" or title pr) and id eq "x"`, []IndexTerm{{"id", "x"}}},
		{user, `not (userName eq "a")`, nil},
		{user, `userName co "a"`, nil},
		{user, `userName ne "a"`, nil},
		{user, `userName eq null`, nil},
		{user, `id eq 5`, nil},
		{user, `name.givenName eq "x"`, nil},
		{user, `emails[value eq "x"]`, nil},
		{user, `displayName eq "x"`, nil},
		{user, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "x"`, nil},
		{group, `displayName eq "Tour Guides"`, []IndexTerm{{"displayName", "Tour Guides"}}},
		{group, `urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x" and externalId eq "g"`, []IndexTerm{{"displayName", "x"}, {"externalId", "g"}}},
		{group, `urn:ietf:params:scim:schemas:core:2.0:User:displayName eq "x"`, nil},
		{group, `userName eq "x"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.rt.Name+" "+tt.filter, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := IndexTerms(e, tt.rt); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("IndexTerms(%q) = %#v, want %#v", tt.filter, got, tt.want)
			}
		})
	}
	ptr := &And{L: &Compare{Path: AttrPath{Attr: "id"}, Op: OpEq, Value: "p"}, R: Compare{Path: AttrPath{Attr: "userName"}, Op: OpEq, Value: "q"}}
	if got, want := IndexTerms(ptr, user), []IndexTerm{{"id", "p"}, {"userName", "q"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pointer nodes: got %#v, want %#v", got, want)
	}
}
