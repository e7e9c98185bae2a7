package scim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jmlgate/jmlgate/connectors"
)

// countRequests counts the requests seen whose "METHOD /path" starts with
// prefix.
func countRequests(s *saas, prefix string) int {
	n := 0
	for _, r := range s.requests() {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// How EnsureAccount finds an existing account, and when it refuses to.
// An account with the userName but no externalId was not made by jmlgate:
// it is taken over only with adopt_existing, which then marks it as
// jmlgate's by setting its externalId.
func TestEnsureLookup(t *testing.T) {
	t.Parallel()
	const id = "11111111-2222-4333-8444-000000000001"
	cases := []struct {
		name string
		// setup creates users directly and returns the id EnsureAccount
		// must return ("" when it must create one).
		setup    func(s *saas) string
		userName string
		adopt    bool             // adopt_existing
		class    connectors.Class // for wantErr
		wantErr  bool
		// errText must appear in the error.
		errText string
	}{
		{
			name:     "UserNameMatchWithoutExternalIDConflicts",
			setup:    func(s *saas) string { s.createUser("Pat@Example.com", "", true); return "" },
			userName: "pat@example.com",
			wantErr:  true, class: connectors.Conflict,
			errText: "was not created by jmlgate; set adopt_existing to take it over",
		},
		{
			name:     "AdoptsUserNameMatchWithoutExternalID",
			setup:    func(s *saas) string { return s.createUser("Pat@Example.com", "", true) },
			userName: "pat@example.com", // userName matches case-insensitively
			adopt:    true,
		},
		{
			name:     "AdoptsAndReenablesInactiveAccount",
			setup:    func(s *saas) string { return s.createUser("pat@example.com", "", false) },
			userName: "pat@example.com",
			adopt:    true,
		},
		{
			name: "PrefersOwnAccountOverAdoptingAnother",
			setup: func(s *saas) string {
				s.createUser("pat@example.com", "", true)
				return s.createUser("pat.old@example.com", id, true)
			},
			userName: "pat@example.com",
			adopt:    true,
		},
		{
			name:     "AdoptionNeverTakesAnotherIdentitysAccount",
			setup:    func(s *saas) string { s.createUser("pat@example.com", "someone-else", true); return "" },
			userName: "pat@example.com",
			adopt:    true,
			wantErr:  true, class: connectors.Conflict,
			errText: "another identity",
		},
		{
			name:     "FindsRenamedAccountByExternalID",
			setup:    func(s *saas) string { return s.createUser("old.name@example.com", id, true) },
			userName: "new.name@example.com",
		},
		{
			name:     "ReenablesInactiveAccount",
			setup:    func(s *saas) string { return s.createUser("pat@example.com", id, false) },
			userName: "pat@example.com",
		},
		{
			name: "PrefersExternalIDOverReusedUserName",
			setup: func(s *saas) string {
				s.createUser("pat@example.com", "someone-else", true)
				return s.createUser("pat.old@example.com", id, true)
			},
			userName: "pat@example.com",
		},
		{
			name:     "UserNameOfAnotherIdentityConflicts",
			setup:    func(s *saas) string { s.createUser("pat@example.com", "someone-else", true); return "" },
			userName: "pat@example.com",
			wantErr:  true, class: connectors.Conflict,
			errText: "another identity",
		},
		{
			name:     "CreatesWhenNothingMatches",
			setup:    func(s *saas) string { s.createUser("other@example.com", "someone-else", true); return "" },
			userName: "pat@example.com",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			want := tc.setup(s)
			cfg := s.config()
			cfg.AdoptExisting = tc.adopt
			conn := open(t, cfg)
			a := testAccount(1, tc.userName)
			a.IdentityID = id
			ref, err := conn.EnsureAccount(testCtx(t), a)
			if tc.wantErr {
				wantClass(t, err, tc.class, 0)
				if !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %q does not say %q", err, tc.errText)
				}
				for _, m := range []string{"POST ", "PATCH ", "PUT "} {
					if n := countRequests(s, m); n != 0 {
						t.Errorf("%d %s requests after a conflict, want none", n, m)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureAccount: %v", err)
			}
			if want != "" && ref != want {
				t.Fatalf("ref = %q, want the existing %q", ref, want)
			}
			creates := countRequests(s, "POST /scim/v2/Users")
			if (want == "") != (creates == 1) || creates > 1 {
				t.Errorf("%d POST /Users, want %d", creates, map[bool]int{true: 1, false: 0}[want == ""])
			}
			if n := countRequests(s, "PATCH "); n > 1 {
				t.Errorf("%d PATCHes, want at most one (adoption and re-enabling together)", n)
			}
			st, ok := s.inspect(t, ref)
			if !ok || !st.Enabled {
				t.Fatalf("account %s after EnsureAccount: %+v found=%v, want enabled", ref, st, ok)
			}
			// Every account EnsureAccount returns is marked as jmlgate's,
			// adopted ones included, so ListAccounts reports it.
			if st.IdentityID != id {
				t.Errorf("externalId of %s = %q, want %q", ref, st.IdentityID, id)
			}
			if want == "" && st.UserName != tc.userName {
				t.Errorf("created %+v, want userName %q", st, tc.userName)
			}
		})
	}
}

// An account without an identity id could not be marked as jmlgate's.
func TestEnsureNeedsIdentityID(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	a := testAccount(1, "pat@example.com")
	a.IdentityID = ""
	_, err := open(t, s.config()).EnsureAccount(testCtx(t), a)
	wantClass(t, err, connectors.Permanent, 0)
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests sent for an account without identity id", n)
	}
}

// A new account carries everything the issue lists.
func TestEnsureCreatesFullUser(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	conn := open(t, s.config())
	a := connectors.Account{IdentityID: "id-1", UserName: "ada@example.com", DisplayName: "Ada Lovelace",
		GivenName: "Ada", FamilyName: "Lovelace", Email: "ada@example.com"}
	ref, err := conn.EnsureAccount(testCtx(t), a)
	if err != nil {
		t.Fatal(err)
	}
	code, u := s.direct(http.MethodGet, "/Users/"+ref, nil)
	if code != http.StatusOK {
		t.Fatalf("GET: %d", code)
	}
	got := fmt.Sprintf("%v|%v|%v|%v|%v|%v", u["userName"], u["externalId"], u["displayName"], u["name"], u["emails"], u["active"])
	want := "ada@example.com|id-1|Ada Lovelace|map[familyName:Lovelace givenName:Ada]|[map[primary:true type:work value:ada@example.com]]|true"
	if got != want {
		t.Errorf("created user\n got %s\nwant %s", got, want)
	}
}

// A 409 on creation means another writer created the account first: the
// connector looks it up again and returns it; a 409 that no lookup
// explains is a Conflict.
func TestEnsureCreateRace(t *testing.T) {
	t.Parallel()
	t.Run("Raced", func(t *testing.T) {
		t.Parallel()
		s := newSaaS(t)
		conn := open(t, s.config())
		a := testAccount(1, "race@example.com")
		won := make(chan string, 1)
		s.inject(fault{match: onMethod(http.MethodPost), answer: func(w http.ResponseWriter, r *http.Request) bool {
			won <- s.createUser(a.UserName, a.IdentityID, true) // the other writer
			return respond(http.StatusConflict, nil, `{"status":"409","scimType":"uniqueness"}`)(w, r)
		}})
		ref, err := conn.EnsureAccount(testCtx(t), a)
		if err != nil {
			t.Fatalf("EnsureAccount after a create race: %v", err)
		}
		if winner := <-won; ref != winner {
			t.Fatalf("ref = %q, want the racing writer's %q", ref, winner)
		}
	})
	t.Run("Unexplained", func(t *testing.T) {
		t.Parallel()
		s := newSaaS(t)
		conn := open(t, s.config())
		s.inject(fault{match: onMethod(http.MethodPost), answer: respond(http.StatusConflict, nil, `{"scimType":"uniqueness"}`)})
		_, err := conn.EnsureAccount(testCtx(t), testAccount(1, "race@example.com"))
		wantClass(t, err, connectors.Conflict, 0)
	})
}

// A userName holding the characters a filter literal must escape is
// found again, not created twice.
func TestFilterEscapingRoundTrip(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		`o"brien@example.com`,
		`back\slash@example.com`,
		`both\"tricky" or userName pr@example.com`,
		"tab\tand unicode é@example.com",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newSaaS(t)
			cfg := s.config()
			cfg.CreateGroups = true
			cfg.AdoptExisting = true
			conn := open(t, cfg)
			// The account exists without an externalId, so only the
			// userName filter can find it (and adopt it).
			ref := s.createUser(name, "", true)
			got, err := conn.EnsureAccount(testCtx(t), testAccount(1, name))
			if err != nil || got != ref {
				t.Fatalf("EnsureAccount = %q, %v; want the existing %q", got, err, ref)
			}
			if n := countRequests(s, "POST /scim/v2/Users"); n != 0 {
				t.Fatalf("%d POST /Users: the userName filter did not find the account", n)
			}
			// Created by the connector: stored as written, found again.
			other := testAccount(2, "new "+name)
			created, err := conn.EnsureAccount(testCtx(t), other)
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := s.inspect(t, created); st.UserName != other.UserName {
				t.Fatalf("userName stored as %q, want %q", st.UserName, other.UserName)
			}
			if again, err := conn.EnsureAccount(testCtx(t), other); err != nil || again != created {
				t.Fatalf("second EnsureAccount = %q, %v; want %q", again, err, created)
			}
			if n := countRequests(s, "POST /scim/v2/Users"); n != 1 {
				t.Fatalf("%d POST /Users, want 1", n)
			}
			// Group names go through the same quoting.
			ent := "group:" + name
			if err := conn.Grant(testCtx(t), ref, ent); err != nil {
				t.Fatal(err)
			}
			if err := open(t, s.config()).Grant(testCtx(t), ref, ent); err != nil {
				t.Fatalf("Grant by a connector without the cached id: %v", err)
			}
			if ids := s.groupsNamed(t, name); len(ids) != 1 {
				t.Fatalf("groups named %q: %d, want 1", name, len(ids))
			}
			if err := open(t, s.config()).Revoke(testCtx(t), ref, ent); err != nil {
				t.Fatal(err)
			}
			if st, _ := s.inspect(t, ref); len(st.Entitlements) != 0 {
				t.Fatalf("entitlements after Revoke: %q", st.Entitlements)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`plain`:      `"plain"`,
		`a"b`:        `"a\"b"`,
		`a\b`:        `"a\\b"`,
		`\"`:         `"\\\""`,
		"tab\there":  `"tab\there"`,
		"nl\n":       `"nl\n"`,
		"nul\x00":    `"nul\u0000"`,
		"é ü":        `"é ü"`,
		"bad\xffutf": `"bad\ufffdutf"`,
	}
	for in, want := range cases {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// Entitlements other than group:<name>, and groups missing without
// create_groups, are refused without touching the target.
func TestGrantRefusals(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	conn := open(t, s.config())
	ref, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	before := len(s.requests())
	for _, ent := range []string{"role:admin", "Engineering", "group:", "GROUP:Engineering"} {
		for op, call := range map[string]func() error{
			"Grant":  func() error { return conn.Grant(testCtx(t), ref, ent) },
			"Revoke": func() error { return conn.Revoke(testCtx(t), ref, ent) },
		} {
			err := call()
			wantClass(t, err, connectors.Permanent, 0)
			if !strings.Contains(err.Error(), ent) {
				t.Errorf("%s %q: error %q does not name the entitlement", op, ent, err)
			}
		}
	}
	if got := len(s.requests()); got != before {
		t.Errorf("malformed entitlements sent %d requests", got-before)
	}

	err = conn.Grant(testCtx(t), ref, "group:Finance Admins")
	wantClass(t, err, connectors.Permanent, 0)
	if !strings.Contains(err.Error(), `"Finance Admins"`) || !strings.Contains(err.Error(), "create_groups") {
		t.Errorf("error %q should name the group and the create_groups key", err)
	}
	if n := countRequests(s, "POST /scim/v2/Groups"); n != 0 {
		t.Errorf("group created without create_groups")
	}
	// Revoking a group that does not exist is already done.
	if err := conn.Revoke(testCtx(t), ref, "group:Finance Admins"); err != nil {
		t.Errorf("Revoke of a missing group: %v", err)
	}
}

// Grant to an account that does not exist is NotFound, so the dispatcher
// ensures the account again instead of dead-lettering the grant.
func TestGrantMissingAccount(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	s.createGroup("Engineering")
	err := open(t, s.config()).Grant(testCtx(t), "6f1d7c1e-0000-4000-8000-000000000000", "group:Engineering")
	wantClass(t, err, connectors.NotFound, 0)
}

// The displayName → id cache is dropped when the target answers 404 for
// the cached id (the group was deleted, maybe recreated).
func TestGroupCacheInvalidation(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	old := s.createGroup("Engineering")
	conn := open(t, s.config())
	ref, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Grant(testCtx(t), ref, "group:Engineering"); err != nil {
		t.Fatal(err)
	}
	if code, _ := s.direct(http.MethodDelete, "/Groups/"+old, nil); code != http.StatusNoContent {
		t.Fatalf("delete group: %d", code)
	}
	// Deleted: revoking finds nothing to do.
	if err := conn.Revoke(testCtx(t), ref, "group:Engineering"); err != nil {
		t.Fatalf("Revoke after the group was deleted: %v", err)
	}
	// Recreated under a new id: grant and revoke reach the new group.
	recreated := s.createGroup("Engineering")
	if err := conn.Grant(testCtx(t), ref, "group:Engineering"); err != nil {
		t.Fatalf("Grant after the group was recreated: %v", err)
	}
	if got := s.groupMembers(t, recreated); !slices.Equal(got, []string{ref}) {
		t.Fatalf("members of the recreated group = %q, want [%s]", got, ref)
	}
	if err := conn.Revoke(testCtx(t), ref, "group:Engineering"); err != nil {
		t.Fatal(err)
	}
	if got := s.groupMembers(t, recreated); len(got) != 0 {
		t.Fatalf("members after Revoke = %q", got)
	}
	// Deleted and recreated again between two revokes.
	if err := conn.Grant(testCtx(t), ref, "group:Engineering"); err != nil {
		t.Fatal(err)
	}
	s.direct(http.MethodDelete, "/Groups/"+recreated, nil)
	third := s.createGroup("Engineering")
	if code, body := s.direct(http.MethodPatch, "/Groups/"+third, patch(patchOperation{Op: "add", Path: "members", Value: []member{{Value: ref}}})); code != http.StatusOK {
		t.Fatalf("add member directly: %d %v", code, body)
	}
	if err := conn.Revoke(testCtx(t), ref, "group:Engineering"); err != nil {
		t.Fatal(err)
	}
	if got := s.groupMembers(t, third); len(got) != 0 {
		t.Fatalf("members of the third group after Revoke = %q", got)
	}
}

// RFC 7644 Table 9 lets a target answer 400 noTarget to a remove whose
// filter matches nothing; the member is gone, which is what Revoke wants.
// Other 400s stay Permanent.
func TestRevokeNoTarget(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	s.createGroup("Engineering")
	conn := open(t, s.config())
	ref, err := conn.EnsureAccount(testCtx(t), testAccount(1, "a@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	s.inject(fault{match: onMethod(http.MethodPatch), answer: respond(400, nil, `{"status":"400","scimType":"noTarget","detail":"no member matches"}`)})
	if err := conn.Revoke(testCtx(t), ref, "group:Engineering"); err != nil {
		t.Fatalf("Revoke answered noTarget: %v, want nil", err)
	}
	s.inject(fault{match: onMethod(http.MethodPatch), answer: respond(400, nil, `{"status":"400","scimType":"invalidPath"}`)})
	wantClass(t, conn.Revoke(testCtx(t), ref, "group:Engineering"), connectors.Permanent, 0)
}

// Concurrent grants of a group that does not exist yet create it once
// (jmlgate's service provider, like many SaaS, allows duplicate group
// names, so a race would show).
func TestCreateGroupOnce(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	cfg := s.config()
	cfg.CreateGroups = true
	conn := open(t, cfg)
	refs := make([]string, 6)
	for i := range refs {
		var err error
		if refs[i], err = conn.EnsureAccount(testCtx(t), testAccount(i, fmt.Sprintf("u%d@example.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(refs))
	for i, ref := range refs {
		wg.Go(func() { errs[i] = conn.Grant(testCtx(t), ref, "group:New Team") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ids := s.groupsNamed(t, "New Team")
	if len(ids) != 1 {
		t.Fatalf("%d groups named New Team, want 1", len(ids))
	}
	if got, want := s.groupMembers(t, ids[0]), slices.Sorted(slices.Values(refs)); !slices.Equal(got, want) {
		t.Fatalf("members = %q, want %q", got, want)
	}
}

// ListAccounts pages through users and groups with the configured count.
func TestListAccountsPaging(t *testing.T) {
	t.Parallel()
	s := newSaaS(t)
	cfg := s.config()
	cfg.PageSize = 2
	cfg.CreateGroups = true
	conn := open(t, cfg)
	var want []connectors.AccountState
	for i := range 5 {
		a := testAccount(i, fmt.Sprintf("u%d@example.com", i))
		a.IdentityID = fmt.Sprintf("id-%d", i)
		ref, err := conn.EnsureAccount(testCtx(t), a)
		if err != nil {
			t.Fatal(err)
		}
		st := connectors.AccountState{Ref: ref, UserName: a.UserName, IdentityID: a.IdentityID, Enabled: i != 3}
		for g := range 5 {
			if (i+g)%2 == 0 {
				ent := fmt.Sprintf("group:G%d", g)
				if err := conn.Grant(testCtx(t), ref, ent); err != nil {
					t.Fatal(err)
				}
				st.Entitlements = append(st.Entitlements, ent)
			}
		}
		if i == 3 {
			if err := conn.DisableAccount(testCtx(t), ref); err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, st)
	}
	// A user jmlgate did not create (no externalId), even one in a group
	// jmlgate grants, is not jmlgate's to list: reconciliation would
	// disable it.
	foreign := s.createUser("foreign@example.com", "", true)
	if code, body := s.direct(http.MethodPatch, "/Groups/"+s.groupsNamed(t, "G0")[0],
		patch(patchOperation{Op: "add", Path: "members", Value: []member{{Value: foreign}}})); code != http.StatusOK {
		t.Fatalf("add foreign member: %d %v", code, body)
	}
	slices.SortFunc(want, func(a, b connectors.AccountState) int { return strings.Compare(a.UserName, b.UserName) })

	got, err := conn.ListAccounts(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ListAccounts\n got %+v\nwant %+v", got, want)
	}
	for _, page := range []string{"/Users?", "/Groups?"} {
		var starts []string
		for _, r := range s.requests() {
			if strings.HasPrefix(r, "GET /scim/v2"+page) && strings.Contains(r, "startIndex=") {
				starts = append(starts, r[strings.Index(r, "startIndex=")+len("startIndex="):][:1])
			}
		}
		if want := []string{"1", "3", "5"}; !slices.Equal(starts, want) {
			t.Errorf("pages of %s started at %q, want %q (count=2)", page, starts, want)
		}
	}
}
