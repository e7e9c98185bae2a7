package scim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/scim"
)

// listNames returns the value of attr (userName or displayName) of every
// resource of a ListResponse, in order, after checking the envelope.
func listNames(t *testing.T, r *srvResp, attr string) []string {
	t.Helper()
	r.want(t, http.StatusOK)
	if !reflect.DeepEqual(r.Body["schemas"], []any{listURN}) {
		t.Errorf("schemas = %v", r.Body["schemas"])
	}
	res := asList(r.Body["Resources"])
	if n := fmt.Sprint(r.Body["itemsPerPage"]); n != fmt.Sprint(len(res)) {
		t.Errorf("itemsPerPage = %s, Resources has %d", n, len(res))
	}
	out := []string{}
	for _, e := range res {
		s, _ := get(e, attr).(string)
		out = append(out, s)
	}
	return out
}

func TestServerListFilter(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)
	alice := env.createUser("alice@example.com", map[string]any{
		"externalId": "EXT-A", "displayName": "Alice Anders", "title": "Engineer", "active": true,
		"name": map[string]any{"givenName": "Alice", "familyName": "Anders"},
		"emails": []any{
			map[string]any{"type": "work", "value": "alice@work.example", "primary": true},
			map[string]any{"type": "home", "value": "alice@home.example"},
		},
		enterpriseURN: map[string]any{"department": "Eng", "employeeNumber": "100", "manager": map[string]any{"value": "m1"}},
		lifecycleURN:  map[string]any{"startDate": "2026-01-10T00:00:00Z"},
	})
	env.createUser("Bob@Example.com", map[string]any{
		"externalId": "ext-b", "displayName": "Bob Brown", "title": "Manager", "active": false,
		"name":        map[string]any{"givenName": "Bob", "familyName": "Brown"},
		"emails":      []any{map[string]any{"type": "work", "value": "bob@work.example"}},
		enterpriseURN: map[string]any{"department": "Sales", "employeeNumber": "200"},
		lifecycleURN:  map[string]any{"startDate": "2026-03-01T00:00:00Z"},
	})
	carol := env.createUser("carol@example.org", map[string]any{
		"displayName": "Carol Chen", "active": true,
		"name": map[string]any{"givenName": "Carol", "familyName": "Chen"},
		// The primary value is the second: sortBy emails.value must use it.
		"emails": []any{
			map[string]any{"type": "home", "value": "a.carol@home.example"},
			map[string]any{"type": "work", "value": "carol@work.example", "primary": true},
		},
		enterpriseURN: map[string]any{"department": "eng"},
	})
	env.createUser("dave@example.org", map[string]any{
		"displayName": "Dave Diaz", "title": "Engineer", "active": true,
		"name": map[string]any{"familyName": "Diaz"},
		// xsd:dateTime without a zone offset, read as UTC.
		lifecycleURN: map[string]any{"startDate": "2026-02-01T00:00:00"},
	})
	env.createUser("eve@example.net", map[string]any{"displayName": "Eve", "title": "Intern", "active": false})
	carolMod := metaOf(carol, "lastModified")

	const (
		A, B, C, D, E = "alice@example.com", "Bob@Example.com", "carol@example.org", "dave@example.org", "eve@example.net"
	)
	cases := []struct {
		filter string
		want   []string // in creation order
	}{
		{`userName eq "ALICE@example.com"`, []string{A}},
		{`userName eq "bob@example.com"`, []string{B}},
		{`userName EQ "eve@example.net"`, []string{E}},
		{`externalId eq "EXT-A"`, []string{A}},
		{`externalId eq "ext-a"`, []string{}}, // caseExact
		{`externalId eq "ext-b"`, []string{B}},
		{`externalId pr`, []string{A, B}},
		{`id eq "` + idOf(alice) + `"`, []string{A}},
		{`userName ne "alice@example.com"`, []string{B, C, D, E}},
		{`userName co "EXAMPLE.ORG"`, []string{C, D}},
		{`userName sw "b"`, []string{B}},
		{`userName ew ".net"`, []string{E}},
		{`userName gt "c"`, []string{C, D, E}},
		{`userName ge "carol@example.org"`, []string{C, D, E}},
		{`userName lt "c"`, []string{A, B}},
		{`userName le "bob@example.com"`, []string{A, B}},
		{`title pr`, []string{A, B, D, E}},
		{`not (title pr)`, []string{C}},
		{`active eq false`, []string{B, E}},
		{`active eq true`, []string{A, C, D}},
		{`not (active eq true)`, []string{B, E}},
		{`title eq "Engineer" and active eq true`, []string{A, D}},
		{`title eq "Manager" or title eq "Intern"`, []string{B, E}},
		{`title eq "Engineer" or title eq "Intern" and active eq false`, []string{A, D, E}},
		{`(title eq "Engineer" or title eq "Intern") and active eq false`, []string{E}},
		{`emails pr`, []string{A, B, C}},
		{`emails[type eq "home"]`, []string{A, C}},
		{`emails[type eq "work" and value co "alice"]`, []string{A}},
		{`emails[type eq "work"].value ew "work.example"`, []string{A, B, C}},
		{`emails[type eq "home"].value sw "alice"`, []string{A}},
		{`emails.value co "home.example"`, []string{A, C}},
		{`emails.primary eq true`, []string{A, C}},
		{`name.familyName eq "chen"`, []string{C}},
		{`name.givenName pr and not (name.familyName sw "A")`, []string{B, C}},
		{enterpriseURN + `:department eq "Eng"`, []string{A, C}},
		{enterpriseURN + `:employeeNumber gt "150"`, []string{B}},
		{enterpriseURN + `:employeeNumber le "100"`, []string{A}},
		{enterpriseURN + `:manager.value eq "m1"`, []string{A}},
		{lifecycleURN + `:startDate lt "2026-02-01T00:00:00Z"`, []string{A}},
		{lifecycleURN + `:startDate ge "2026-01-10T00:00:00Z"`, []string{A, B, D}},
		{lifecycleURN + `:startDate eq "2026-02-01T01:00:00+01:00"`, []string{D}},
		{userURN + `:userName sw "dave"`, []string{D}},
		{`meta.lastModified gt "` + carolMod + `"`, []string{D, E}},
		{`meta.created le "` + carolMod + `"`, []string{A, B, C}},
		{`meta.resourceType eq "User"`, []string{A, B, C, D, E}},
		// The same instant written with another offset (dateTime compares
		// as instants, RFC 7643 §2.3.5).
		{`meta.lastModified gt "` + inZone(carolMod, 1) + `"`, []string{D, E}},
		{`meta.lastModified eq "` + inZone(carolMod, -5) + `"`, []string{C}},
		// Indexable equalities combined with or/not/and must not narrow
		// the candidates wrongly.
		{`userName eq "alice@example.com" or userName eq "EVE@example.net"`, []string{A, E}},
		{`not (userName eq "alice@example.com")`, []string{B, C, D, E}},
		{`userName eq "alice@example.com" and title eq "Manager"`, []string{}},
		{`externalId eq "EXT-A" and userName eq "bob@example.com"`, []string{}},
		{`externalId eq "ext-B"`, []string{}},
		{`id eq "` + idOf(alice) + `" or id eq "` + idOf(carol) + `"`, []string{A, C}},
		{`userName eq "alice@example.com" or title eq "Intern"`, []string{A, E}},
	}
	for _, tc := range cases {
		t.Run(tc.filter, func(t *testing.T) {
			t.Parallel()
			r := env.do(http.MethodGet, "/Users?filter="+tc.filter, nil)
			got := listNames(t, r, "userName")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("filter %s = %v, want %v", tc.filter, got, tc.want)
			}
			if n := fmt.Sprint(r.Body["totalResults"]); n != fmt.Sprint(len(tc.want)) {
				t.Errorf("totalResults = %s, want %d", n, len(tc.want))
			}
		})
	}

	errCases := []struct {
		filter   string
		fragment string
	}{
		{`userName eq`, "position"},
		{`userName xx "a"`, "position"},
		{`(userName eq "a"`, "position"},
		{`emails[type eq "work"`, "position"},
		{`userName eq "a" and`, "position"},
		{`shoeSize eq 9`, "shoeSize"},
		{`name.shoeSize eq "x"`, "shoeSize"},
		{`urn:example:Unknown:attr eq "x"`, "urn:example:Unknown"},
		{`active gt true`, "active"},
	}
	for _, tc := range errCases {
		t.Run("invalid "+tc.filter, func(t *testing.T) {
			t.Parallel()
			env.do(http.MethodGet, "/Users?filter="+tc.filter, nil).wantError(t, http.StatusBadRequest, "invalidFilter", tc.fragment)
		})
	}

	sortCases := []struct {
		query string
		want  []string
	}{
		{"sortBy=userName", []string{A, B, C, D, E}},
		{"sortBy=userName&sortOrder=descending", []string{E, D, C, B, A}},
		{"sortBy=userName&sortOrder=Descending", []string{E, D, C, B, A}},
		// Without a value: last when ascending, first when descending
		// (RFC 7644 §3.4.2.3).
		{"sortBy=title&filter=active eq true", []string{A, D, C}},
		{"sortBy=title&sortOrder=descending&filter=active eq true", []string{C, D, A}},
		{"sortBy=emails.value", []string{A, B, C, D, E}},
		{"sortBy=emails.value&sortOrder=descending", []string{E, D, C, B, A}},
		// externalId is caseExact: "EXT-A" < "ext-b".
		{"sortBy=externalId", []string{A, B, C, D, E}},
		{"sortBy=externalId&sortOrder=descending", []string{E, D, C, B, A}},
		{"sortBy=externalId&filter=userName pr", []string{A, B, C, D, E}},
		{"sortBy=externalId&sortOrder=descending&filter=userName pr", []string{E, D, C, B, A}},
		{"sortBy=active", []string{B, E, A, C, D}},
		{"sortBy=active&sortOrder=descending", []string{D, C, A, E, B}},
		{"sortBy=" + lifecycleURN + ":startDate", []string{A, D, B, C, E}},
		{"sortBy=" + lifecycleURN + ":startDate&sortOrder=descending", []string{E, C, B, D, A}},
		{"sortBy=" + enterpriseURN + ":employeeNumber&sortOrder=descending&filter=" + enterpriseURN + ":employeeNumber pr", []string{B, A}},
	}
	for _, tc := range sortCases {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			got := listNames(t, env.do(http.MethodGet, "/Users?"+tc.query, nil), "userName")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s = %v, want %v", tc.query, got, tc.want)
			}
		})
	}

	t.Run("projection on a list", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, `/Users?filter=title eq "Engineer"&attributes=userName,`+enterpriseURN+":department", nil).want(t, 200)
		res := asList(r.Body["Resources"])
		if len(res) != 2 {
			t.Fatalf("Resources = %v", res)
		}
		if got := keys(res[0].(map[string]any)); !reflect.DeepEqual(got, []string{"id", "schemas", enterpriseURN, "userName"}) {
			t.Errorf("alice keys = %v", got)
		}
		if got := keys(res[1].(map[string]any)); !reflect.DeepEqual(got, []string{"id", "schemas", "userName"}) {
			t.Errorf("dave keys = %v", got)
		}
	})

	t.Run("search", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodPost, "/Users/.search", map[string]any{
			"schemas": []string{searchURN}, "filter": `title eq "Engineer"`, "sortBy": "userName", "sortOrder": "descending",
			"attributes": []string{"userName"}, "startIndex": 1, "count": 1,
		})
		if got := listNames(t, r, "userName"); !reflect.DeepEqual(got, []string{D}) {
			t.Errorf("Resources = %v", got)
		}
		if r.Body["totalResults"] != jsonNum(2) || r.Body["startIndex"] != jsonNum(1) {
			t.Errorf("envelope = %s", r.Raw)
		}
		if got := keys(get(r.Body, "Resources", 0).(map[string]any)); !reflect.DeepEqual(got, []string{"id", "schemas", "userName"}) {
			t.Errorf("keys = %v", got)
		}
		r = env.do(http.MethodPost, "/Users/.search", map[string]any{
			"schemas": []string{searchURN}, "excludedAttributes": []string{"emails", "meta"}, "startIndex": 2, "count": 2,
		})
		if got := listNames(t, r, "userName"); !reflect.DeepEqual(got, []string{B, C}) {
			t.Errorf("page = %v", got)
		}
		for _, e := range asList(r.Body["Resources"]) {
			if get(e, "emails") != nil || get(e, "meta") != nil {
				t.Errorf("excludedAttributes ignored: %v", e)
			}
		}
	})

	t.Run("search errors", func(t *testing.T) {
		t.Parallel()
		env.do(http.MethodPost, "/Users/.search", map[string]any{"filter": `userName pr`}).wantError(t, 400, "invalidSyntax", searchURN)
		env.do(http.MethodPost, "/Users/.search", map[string]any{"schemas": []string{searchURN}, "filter": `userName eq`}).wantError(t, 400, "invalidFilter")
		env.do(http.MethodPost, "/Users/.search", map[string]any{"schemas": []string{searchURN}, "sortOrder": "sideways"}).wantError(t, 400, "invalidValue", "sideways")
		env.do(http.MethodPost, "/Users/.search", map[string]any{"schemas": []string{searchURN}, "count": "ten"}).wantError(t, 400, "invalidSyntax")
		env.do(http.MethodPost, "/Users/.search", `{"schemas": [`).wantError(t, 400, "invalidSyntax")
		env.do(http.MethodPost, "/Users/.search", `{}`, "Content-Type", "text/xml").wantError(t, 415, "-")
	})
}

// inZone rewrites an RFC 3339 UTC timestamp as the same instant at a
// whole-hour offset.
func inZone(ts string, hours int) string {
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		panic(err)
	}
	return tm.In(time.FixedZone("", hours*3600)).Format(time.RFC3339Nano)
}

func jsonNum(n int) any { return json.Number(fmt.Sprint(n)) }

func TestServerListPaging(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, func(c *scim.Config) { c.MaxResults = 10 })
	// 25 users created in an order unrelated to their names; family names
	// run against the userNames, and every third user has no department.
	var created []string // userNames in creation order
	for i := 0; i < 25; i++ {
		n := (i * 7) % 25
		userName := fmt.Sprintf("page-%02d@example.com", n)
		if n%2 == 1 {
			userName = strings.ToUpper(userName[:1]) + userName[1:]
		}
		extra := map[string]any{"name": map[string]any{"familyName": fmt.Sprintf("F%02d", 24-n)}}
		if n%3 != 0 {
			extra[enterpriseURN] = map[string]any{"department": fmt.Sprintf("D%02d", n)}
		}
		env.createUser(userName, extra)
		created = append(created, userName)
	}
	byName := append([]string(nil), created...)
	sort.Slice(byName, func(i, j int) bool { return strings.ToLower(byName[i]) < strings.ToLower(byName[j]) })
	reversed := func(s []string) []string {
		out := make([]string, len(s))
		for i, x := range s {
			out[len(s)-1-i] = x
		}
		return out
	}

	pageCases := []struct {
		query      string
		startIndex int
		want       []string
	}{
		{"startIndex=0&count=3", 1, created[:3]},
		{"startIndex=-5&count=3", 1, created[:3]},
		{"startIndex=24&count=3", 24, created[23:]},
		{"startIndex=26&count=3", 26, []string{}},
		{"startIndex=1000", 1000, []string{}},
		{"count=50", 1, created[:10]}, // clamped to MaxResults
		{"", 1, created[:10]},         // default page is MaxResults
		{"count=0", 1, []string{}},
		{"count=-1", 1, []string{}},
		{"startIndex=21&count=10", 21, created[20:]},
		{"count=0&filter=userName sw \"page\"", 1, []string{}},
		{"startIndex=26&filter=userName sw \"page\"", 26, []string{}},
		{"startIndex=0&count=2&sortBy=userName", 1, byName[:2]},
	}
	for _, tc := range pageCases {
		t.Run("page "+tc.query, func(t *testing.T) {
			t.Parallel()
			r := env.do(http.MethodGet, "/Users?"+tc.query, nil)
			got := listNames(t, r, "userName")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("page = %v, want %v", got, tc.want)
			}
			if r.Body["totalResults"] != jsonNum(25) || r.Body["startIndex"] != jsonNum(tc.startIndex) {
				t.Errorf("totalResults = %v, startIndex = %v; want 25, %d", r.Body["totalResults"], r.Body["startIndex"], tc.startIndex)
			}
		})
	}

	t.Run("count=0 returns no resources", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, "/Users?count=0", nil).want(t, 200)
		if res, ok := r.Body["Resources"]; ok && len(asList(res)) != 0 {
			t.Errorf("Resources = %v", res)
		}
		if r.Body["itemsPerPage"] != jsonNum(0) {
			t.Errorf("itemsPerPage = %v", r.Body["itemsPerPage"])
		}
	})

	for _, tc := range []struct{ name, query string }{
		{"startIndex", "startIndex=one"},
		{"count", "count=1.5"},
		{"sortOrder", "sortBy=userName&sortOrder=up"},
		{"sortBy", "sortBy=shoeSize"},
	} {
		t.Run("invalid "+tc.name, func(t *testing.T) {
			t.Parallel()
			env.do(http.MethodGet, "/Users?"+tc.query, nil).wantError(t, 400, "invalidValue", tc.name)
		})
	}

	// Paging through with count=10 yields every user exactly once, in the
	// same order as one big page would.
	orders := []struct {
		query string
		want  []string
	}{
		{"", created},
		{"filter=userName sw \"PAGE\"", created},
		{"sortBy=userName", byName},
		{"sortBy=userName&sortOrder=descending", reversed(byName)},
		{"sortBy=userName&filter=userName pr", byName},
		{"sortBy=name.familyName", reversed(byName)},
		{"sortBy=name.familyName&sortOrder=descending", byName},
		{"sortBy=meta.created&sortOrder=descending", reversed(created)},
		{"sortBy=" + enterpriseURN + ":department", nil},
		{"sortBy=" + enterpriseURN + ":department&sortOrder=descending", nil},
	}
	for _, tc := range orders {
		t.Run("stable paging "+tc.query, func(t *testing.T) {
			t.Parallel()
			var all []string
			seen := map[string]bool{}
			for start := 1; start <= 25; start += 10 {
				q := fmt.Sprintf("startIndex=%d&count=10", start)
				if tc.query != "" {
					q += "&" + tc.query
				}
				r := env.do(http.MethodGet, "/Users?"+q, nil)
				page := listNames(t, r, "userName")
				if r.Body["totalResults"] != jsonNum(25) {
					t.Fatalf("totalResults = %v", r.Body["totalResults"])
				}
				for _, n := range page {
					if seen[n] {
						t.Errorf("%s returned twice", n)
					}
					seen[n] = true
				}
				all = append(all, page...)
			}
			if len(all) != 25 {
				t.Fatalf("paging returned %d users, want 25: %v", len(all), all)
			}
			if tc.want != nil && !reflect.DeepEqual(all, tc.want) {
				t.Errorf("order = %v\nwant    %v", all, tc.want)
			}
			if strings.Contains(tc.query, "department") {
				// Users with a department, in department order, then those
				// without (ascending) or the reverse (descending).
				var deps []string
				missing := 0
				for i, n := range all {
					num := n[5:7]
					var d int
					fmt.Sscanf(num, "%d", &d)
					has := d%3 != 0
					desc := strings.Contains(tc.query, "descending")
					if !has {
						missing++
						if (!desc && i < 25-9) || (desc && i >= 9) {
							t.Errorf("%s without department at position %d", n, i)
						}
						continue
					}
					deps = append(deps, num)
				}
				if missing != 9 {
					t.Errorf("%d users without department, want 9", missing)
				}
				sorted := sort.StringsAreSorted(deps)
				if strings.Contains(tc.query, "descending") {
					sorted = sort.SliceIsSorted(deps, func(i, j int) bool { return deps[i] > deps[j] })
				}
				if !sorted {
					t.Errorf("departments out of order: %v", deps)
				}
			}
		})
	}
}

func TestServerListGroups(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)
	u1 := idOf(env.createUser("lg1@example.com", nil))
	u2 := idOf(env.createUser("lg2@example.com", nil))
	eng := env.createGroup("Engineering", u1, u2)
	env.createGroup("Sales", u2)
	env.createGroup("empty")

	t.Run("members listed by default", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, "/Groups", nil)
		if got := listNames(t, r, "displayName"); !reflect.DeepEqual(got, []string{"Engineering", "Sales", "empty"}) {
			t.Fatalf("groups = %v", got)
		}
		if n := len(asList(get(r.Body, "Resources", 0, "members"))); n != 2 {
			t.Errorf("Engineering has %d members listed, want 2", n)
		}
	})

	t.Run("excludedAttributes=members", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, "/Groups?excludedAttributes=members", nil)
		if got := listNames(t, r, "displayName"); len(got) != 3 {
			t.Fatalf("groups = %v", got)
		}
		for _, g := range asList(r.Body["Resources"]) {
			if m, ok := g.(map[string]any)["members"]; ok {
				t.Errorf("members = %v despite excludedAttributes", m)
			}
		}
		// Same with a filter that does not mention members, and with one
		// that does.
		for _, f := range []string{`displayName eq "engineering"`, `members.value eq "` + u1 + `"`} {
			r := env.do(http.MethodGet, "/Groups?excludedAttributes=members&filter="+f, nil)
			if got := listNames(t, r, "displayName"); !reflect.DeepEqual(got, []string{"Engineering"}) {
				t.Errorf("filter %s: groups = %v", f, got)
			}
			if get(r.Body, "Resources", 0, "members") != nil {
				t.Errorf("filter %s: members returned", f)
			}
		}
	})

	t.Run("users by group", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodGet, `/Users?filter=groups.value eq "`+idOf(eng)+`"&sortBy=userName&sortOrder=descending`, nil)
		if got := listNames(t, r, "userName"); !reflect.DeepEqual(got, []string{"lg2@example.com", "lg1@example.com"}) {
			t.Errorf("users = %v", got)
		}
		// A projection asking for groups gets them although the filter
		// does not mention them.
		r = env.do(http.MethodGet, `/Users?filter=userName eq "lg2@example.com"&attributes=groups`, nil).want(t, 200)
		if n := len(asList(get(r.Body, "Resources", 0, "groups"))); n != 2 {
			t.Errorf("lg2 groups = %v, want 2", get(r.Body, "Resources", 0, "groups"))
		}
		r = env.do(http.MethodGet, `/Users?attributes=groups&count=1`, nil).want(t, 200)
		if n := len(asList(get(r.Body, "Resources", 0, "groups"))); n != 1 {
			t.Errorf("lg1 groups = %v, want 1", get(r.Body, "Resources", 0, "groups"))
		}
	})

	filters := []struct {
		filter string
		want   []string
	}{
		{`displayName eq "SALES"`, []string{"Sales"}},
		{`members.value eq "` + u2 + `"`, []string{"Engineering", "Sales"}},
		{`members[value eq "` + u1 + `"]`, []string{"Engineering"}},
		{`not (members pr)`, []string{"empty"}},
		{`id eq "` + idOf(eng) + `"`, []string{"Engineering"}},
	}
	for _, tc := range filters {
		t.Run(tc.filter, func(t *testing.T) {
			t.Parallel()
			got := listNames(t, env.do(http.MethodGet, "/Groups?filter="+tc.filter, nil), "displayName")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("groups = %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("sortBy displayName descending", func(t *testing.T) {
		t.Parallel()
		got := listNames(t, env.do(http.MethodGet, "/Groups?sortBy=displayName&sortOrder=descending&attributes=displayName", nil), "displayName")
		if !reflect.DeepEqual(got, []string{"Sales", "Engineering", "empty"}) {
			t.Errorf("groups = %v, want Sales, Engineering, empty (case-insensitive: \"em\" < \"en\")", got)
		}
	})

	t.Run("search on Groups", func(t *testing.T) {
		t.Parallel()
		r := env.do(http.MethodPost, "/Groups/.search", map[string]any{"schemas": []string{searchURN}, "filter": `displayName sw "e"`, "excludedAttributes": []string{"members"}})
		if got := listNames(t, r, "displayName"); !reflect.DeepEqual(got, []string{"Engineering", "empty"}) {
			t.Errorf("groups = %v", got)
		}
	})
}

// userName equality is answered from the index without decoding when the
// comparison is plain ASCII; anything else goes through the filter's own
// case folding. Both must give the filter's answer.
func TestServerListUserNameEqualityFolding(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)
	env.createUser("Åsa.Öberg@example.se", nil)
	env.createUser("KATE@example.com", nil)
	cases := []struct {
		filter string
		want   int
	}{
		{`userName eq "åsa.öberg@EXAMPLE.SE"`, 1},
		{`userName eq "ÅSA.ÖBERG@example.se"`, 1},
		{`userName eq "asa.oberg@example.se"`, 0},
		{`userName eq "kate@example.com"`, 1},
		{`userName eq "kate@example.co"`, 0},
		{`userName eq "kate@example.com" and active eq true`, 0}, // not a sole term: matched in full
	}
	for _, c := range cases {
		r := env.do(http.MethodGet, "/Users?filter="+c.filter, nil).want(t, 200)
		if got := fmt.Sprint(r.Body["totalResults"]); got != fmt.Sprint(c.want) {
			t.Errorf("%s: totalResults %s, want %d", c.filter, got, c.want)
		}
	}
}

// POST /.search at the root searches Users then Groups as one list (RFC 7644
// §3.4.3); a filter one type cannot evaluate simply matches none of it.
func TestServerRootSearch(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)
	a := env.createUser("ann@example.com", map[string]any{"displayName": "Eng"})
	b := env.createUser("bea@example.com", nil)
	env.createUser("cy@example.com", nil)
	env.createGroup("Eng", idOf(a))
	env.createGroup("Ops", idOf(b))

	search := func(body map[string]any) *srvResp {
		body["schemas"] = []string{searchURN}
		return env.do(http.MethodPost, "/.search", body)
	}
	types := func(r *srvResp) []string {
		var out []string
		for _, res := range r.Body["Resources"].([]any) {
			out = append(out, res.(map[string]any)["meta"].(map[string]any)["resourceType"].(string))
		}
		return out
	}
	cases := []struct {
		name  string
		body  map[string]any
		total string
		types []string
	}{
		{"everything", map[string]any{}, "5", []string{"User", "User", "User", "Group", "Group"}},
		{"window across the types", map[string]any{"startIndex": 3, "count": 2}, "5", []string{"User", "Group"}},
		{"window inside the second type", map[string]any{"startIndex": 5, "count": 10}, "5", []string{"Group"}},
		{"count 0", map[string]any{"count": 0}, "5", nil},
		{"attribute both types have", map[string]any{"filter": `displayName eq "Eng"`}, "2", []string{"User", "Group"}},
		{"user-only attribute", map[string]any{"filter": `userName sw "b"`}, "1", []string{"User"}},
		{"group-only attribute", map[string]any{"filter": `members pr`}, "2", []string{"Group", "Group"}},
	}
	for _, c := range cases {
		r := search(c.body).want(t, 200)
		if got := fmt.Sprint(r.Body["totalResults"]); got != c.total || !slices.Equal(types(r), c.types) {
			t.Errorf("%s: totalResults %s, types %v; want %s, %v", c.name, got, types(r), c.total, c.types)
		}
	}
	search(map[string]any{"filter": `nosuch eq "x"`}).wantError(t, 400, "invalidFilter")
	env.do(http.MethodPost, "/.search", map[string]any{"filter": `userName pr`}).wantError(t, 400, "invalidSyntax")
	env.do(http.MethodGet, "/.search", nil).wantError(t, 405, "")
}
