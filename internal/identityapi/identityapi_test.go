package identityapi_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/identityapi"
	"github.com/jmlgate/jmlgate/internal/store"
	"github.com/jmlgate/jmlgate/internal/store/sqlite"
)

// base has a nanosecond part so that any rounding shows.
var base = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "jmlgate.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() }) // a test may close it first
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func ident(id, state string) *store.Identity {
	return &store.Identity{ID: id, UserName: "user-" + id, State: state, Version: 1, Created: base, Updated: base}
}

// fixture is the seeded data: identities by id and audit records by seq.
type fixture struct {
	ids  map[string]*store.Identity
	recs map[int64]*store.AuditRecord
}

// event is one audit record to seed.
type event struct{ typ, id, action string }

// events are appended in this order, so event i has sequence i+1.
var events = []event{
	{store.TypeUser, "u-active", "user.create"},                          // 1
	{identityapi.ResourceTypeIdentity, "u-active", "lifecycle.joiner"},   // 2
	{store.TypeUser, "u-pre", "user.create"},                             // 3
	{store.TypeGroup, "u-active", "group.create"},                        // 4: same id, other type
	{store.TypeUser, "u-active", "user.patch"},                           // 5
	{identityapi.ResourceTypeIdentity, "u-active", "lifecycle.activate"}, // 6
	{store.TypeUser, "gone", "user.create"},                              // 7: a user with no identity
	{store.TypeUser, "gone", "user.delete"},                              // 8
	{store.TypeUser, "u-active2", "user.create"},                         // 9: id with u-active as prefix
	{identityapi.ResourceTypeIdentity, "u-active", "lifecycle.mover"},    // 10
}

func seed(t *testing.T, s store.Store) *fixture {
	t.Helper()
	f := &fixture{ids: map[string]*store.Identity{}, recs: map[int64]*store.AuditRecord{}}
	active := &store.Identity{
		ID: "u-active", UserName: "ada@example.com", State: store.StateActive,
		StartDate: at(-72 * time.Hour), EndDate: at(90*24*time.Hour + time.Nanosecond),
		MFAMethod: "webauthn", MFAEnrolledAt: at(time.Minute + 7*time.Nanosecond),
		Desired: []byte(`[{"connector":"github","entitlement":"team:sre"}]`),
		Version: 3, Created: base, Updated: at(time.Hour),
	}
	pre := ident("u-pre", store.StatePreHire)
	pre.StartDate = at(7 * 24 * time.Hour)
	pre.NextCheck = pre.StartDate
	term := ident("u-term", store.StateTerminated)
	term.LeaverAt = at(2 * time.Hour)
	term.Desired = []byte(`[]`)
	for _, id := range []*store.Identity{
		active, pre, term,
		ident("u-await1", store.StateAwaitingMFA), ident("u-await2", store.StateAwaitingMFA),
		ident("a/b", store.StateActive), ident("u-del", store.StateDeleted),
	} {
		f.ids[id.ID] = id
	}
	err := s.Update(t.Context(), func(tx store.Tx) error {
		for _, id := range f.ids {
			// Versions above 1 are reached by replacing.
			v := *id
			for v.Version = 1; v.Version <= id.Version; v.Version++ {
				if err := tx.PutIdentity(t.Context(), &v); err != nil {
					return err
				}
			}
		}
		for i, e := range events {
			rec, err := audit.Append(t.Context(), tx, at(time.Duration(i)*time.Second+time.Nanosecond), audit.Entry{
				Actor: "token:hr", Action: e.action, ResourceType: e.typ, ResourceID: e.id,
				RequestID: fmt.Sprintf("req-%d", i+1), After: map[string]any{"n": i},
			})
			if err != nil {
				return err
			}
			f.recs[rec.Seq] = rec
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return f
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, h http.Handler, method, target string) response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, target, nil))
	return response{rec.Code, rec.Header(), rec.Body.Bytes()}
}

// getJSON GETs target, expects status and decodes the body into v.
func getJSON(t *testing.T, h http.Handler, target string, status int, v any) {
	t.Helper()
	r := do(t, h, http.MethodGet, target)
	if r.status != status {
		t.Fatalf("GET %s: status %d, want %d; body %s", target, r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", target, ct)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: decoding %s: %v", target, r.body, err)
	}
}

type errBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func wantError(t *testing.T, h http.Handler, method, target string, status int, code string) errBody {
	t.Helper()
	r := do(t, h, method, target)
	var e errBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("%s %s: error body %q: %v", method, target, r.body, err)
	}
	if r.status != status || e.Error != code || e.Message == "" {
		t.Errorf("%s %s = %d %+v, want %d %q with a message", method, target, r.status, e, status, code)
	}
	return e
}

// sameJSON compares a body with the expected document, ignoring formatting.
func sameJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad expectation: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

func summaryIDs(l identityapi.List) []string {
	out := []string{}
	for _, s := range l.Identities {
		out = append(out, s.ID)
	}
	return out
}

// setup returns a handler over a freshly seeded store.
func setup(t *testing.T) (http.Handler, *fixture) {
	t.Helper()
	s := openStore(t)
	f := seed(t, s)
	return identityapi.Handler(s, nil), f
}

func TestList(t *testing.T) {
	t.Parallel()
	h, _ := setup(t)
	tests := []struct {
		query      string
		want       []string
		wantCursor string
	}{
		{"", []string{"a/b", "u-active", "u-await1", "u-await2", "u-del", "u-pre", "u-term"}, ""},
		{"?limit=7", []string{"a/b", "u-active", "u-await1", "u-await2", "u-del", "u-pre", "u-term"}, ""},
		{"?limit=3", []string{"a/b", "u-active", "u-await1"}, "u-await1"},
		{"?limit=3&cursor=u-await1", []string{"u-await2", "u-del", "u-pre"}, "u-pre"},
		{"?limit=3&cursor=u-pre", []string{"u-term"}, ""},
		{"?cursor=u-term", []string{}, ""},
		{"?cursor=u-b", []string{"u-del", "u-pre", "u-term"}, ""},
		{"?state=awaiting_mfa", []string{"u-await1", "u-await2"}, ""},
		{"?state=awaiting_mfa&limit=1", []string{"u-await1"}, "u-await1"},
		{"?state=awaiting_mfa&limit=1&cursor=u-await1", []string{"u-await2"}, ""},
		{"?state=active", []string{"a/b", "u-active"}, ""},
		{"?state=active&cursor=a%2Fb", []string{"u-active"}, ""},
		{"?state=pre_hire", []string{"u-pre"}, ""},
		{"?state=terminated", []string{"u-term"}, ""},
		{"?state=deleted", []string{"u-del"}, ""},
		{"?state=", []string{"a/b", "u-active", "u-await1", "u-await2", "u-del", "u-pre", "u-term"}, ""},
	}
	for _, tc := range tests {
		var l identityapi.List
		getJSON(t, h, identityapi.Prefix+tc.query, http.StatusOK, &l)
		if got := summaryIDs(l); !slices.Equal(got, tc.want) || l.NextCursor != tc.wantCursor {
			t.Errorf("GET %s = %v cursor %q, want %v cursor %q", tc.query, got, l.NextCursor, tc.want, tc.wantCursor)
		}
	}
	for _, query := range []string{"?state=Active", "?state=leaver", "?limit=0", "?limit=-1", "?limit=ten", "?limit=1.5"} {
		wantError(t, h, http.MethodGet, identityapi.Prefix+query, http.StatusBadRequest, "invalid_request")
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	h, f := setup(t)
	var all []string
	for id := range f.ids {
		all = append(all, id)
	}
	slices.Sort(all)
	for _, limit := range []int{1, 2, 3, 6, 7} {
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			if page > len(all) {
				t.Fatalf("limit %d: cursor never ends", limit)
			}
			var l identityapi.List
			getJSON(t, h, fmt.Sprintf("%s?limit=%d&cursor=%s", identityapi.Prefix, limit, cursor), http.StatusOK, &l)
			if len(l.Identities) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(l.Identities))
			}
			got = append(got, summaryIDs(l)...)
			if l.NextCursor == "" {
				break
			}
			cursor = strings.ReplaceAll(l.NextCursor, "/", "%2F")
		}
		if !slices.Equal(got, all) {
			t.Errorf("paging by %d = %v, want %v", limit, got, all)
		}
	}
}

func TestListSummary(t *testing.T) {
	t.Parallel()
	h, _ := setup(t)
	r := do(t, h, http.MethodGet, identityapi.Prefix+"?limit=2")
	sameJSON(t, "list", r.body, `{
		"identities": [
			{"id": "a/b", "userName": "user-a/b", "state": "active", "mfaEnrolled": false,
			 "updated": "2026-03-01T12:00:00.123456789Z", "version": 1},
			{"id": "u-active", "userName": "ada@example.com", "state": "active",
			 "startDate": "2026-02-26T12:00:00.123456789Z", "endDate": "2026-05-30T12:00:00.12345679Z",
			 "mfaEnrolled": true, "updated": "2026-03-01T13:00:00.123456789Z", "version": 3}
		],
		"next_cursor": "u-active"
	}`)
	r = do(t, h, http.MethodGet, identityapi.Prefix+"?state=terminated")
	sameJSON(t, "terminated list", r.body, `{"identities": [
		{"id": "u-term", "userName": "user-u-term", "state": "terminated", "mfaEnrolled": false,
		 "leaverAt": "2026-03-01T14:00:00.123456789Z", "updated": "2026-03-01T12:00:00.123456789Z", "version": 1}]}`)
}

// TestListLimitCap seeds more identities than MaxLimit.
func TestListLimitCap(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	const n = identityapi.MaxLimit + 1
	if err := s.Update(t.Context(), func(tx store.Tx) error {
		for i := range n {
			if err := tx.PutIdentity(t.Context(), ident(fmt.Sprintf("id-%04d", i), store.StateActive)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h := identityapi.Handler(s, nil)
	tests := []struct {
		query      string
		wantLen    int
		wantCursor string
	}{
		{"", identityapi.DefaultLimit, fmt.Sprintf("id-%04d", identityapi.DefaultLimit-1)},
		{"?limit=100000", identityapi.MaxLimit, fmt.Sprintf("id-%04d", identityapi.MaxLimit-1)},
		{"?limit=500", identityapi.MaxLimit, fmt.Sprintf("id-%04d", identityapi.MaxLimit-1)},
		{"?limit=500&cursor=id-0000", identityapi.MaxLimit, ""},
	}
	for _, tc := range tests {
		var l identityapi.List
		getJSON(t, h, identityapi.Prefix+tc.query, http.StatusOK, &l)
		if len(l.Identities) != tc.wantLen || l.NextCursor != tc.wantCursor {
			t.Errorf("GET %s: %d identities, cursor %q; want %d, %q", tc.query, len(l.Identities), l.NextCursor, tc.wantLen, tc.wantCursor)
		}
	}
}

func TestDetail(t *testing.T) {
	t.Parallel()
	h, _ := setup(t)
	tests := []struct{ path, want string }{
		{"/u-active", `{
			"id": "u-active", "userName": "ada@example.com", "state": "active",
			"startDate": "2026-02-26T12:00:00.123456789Z", "endDate": "2026-05-30T12:00:00.12345679Z",
			"mfa": {"enrolled": true, "method": "webauthn", "enrolledAt": "2026-03-01T12:01:00.123456796Z"},
			"exceptions": [],
			"desired": [{"connector": "github", "entitlement": "team:sre"}],
			"actual": {},
			"deliveries": [],
			"pendingApprovals": [],
			"created": "2026-03-01T12:00:00.123456789Z", "updated": "2026-03-01T13:00:00.123456789Z",
			"version": 3}`},
		// Nothing optional set: times omitted, desired [] for none.
		{"/u-pre", `{
			"id": "u-pre", "userName": "user-u-pre", "state": "pre_hire",
			"startDate": "2026-03-08T12:00:00.123456789Z",
			"mfa": {"enrolled": false}, "exceptions": [], "desired": [], "actual": {}, "deliveries": [], "pendingApprovals": [],
			"created": "2026-03-01T12:00:00.123456789Z", "updated": "2026-03-01T12:00:00.123456789Z", "version": 1}`},
		{"/u-term", `{
			"id": "u-term", "userName": "user-u-term", "state": "terminated",
			"mfa": {"enrolled": false}, "exceptions": [], "desired": [], "actual": {}, "deliveries": [], "pendingApprovals": [],
			"leaverAt": "2026-03-01T14:00:00.123456789Z",
			"created": "2026-03-01T12:00:00.123456789Z", "updated": "2026-03-01T12:00:00.123456789Z", "version": 1}`},
		// An escaped slash stays in the id.
		{"/a%2Fb", `{
			"id": "a/b", "userName": "user-a/b", "state": "active",
			"mfa": {"enrolled": false}, "exceptions": [], "desired": [], "actual": {}, "deliveries": [], "pendingApprovals": [],
			"created": "2026-03-01T12:00:00.123456789Z", "updated": "2026-03-01T12:00:00.123456789Z", "version": 1}`},
	}
	for _, tc := range tests {
		r := do(t, h, http.MethodGet, identityapi.Prefix+tc.path)
		if r.status != http.StatusOK {
			t.Errorf("GET %s: status %d: %s", tc.path, r.status, r.body)
			continue
		}
		sameJSON(t, "GET "+tc.path, r.body, tc.want)
	}
	for _, path := range []string{"/nobody", "/gone", "/U-ACTIVE", "/u-active%20"} {
		e := wantError(t, h, http.MethodGet, identityapi.Prefix+path, http.StatusNotFound, "not_found")
		if !strings.Contains(e.Message, "no identity with id") {
			t.Errorf("GET %s: message %q does not name the identity", path, e.Message)
		}
	}
}

func recordIDs(hist identityapi.History) []int64 {
	out := []int64{}
	for _, r := range hist.Records {
		out = append(out, r.Seq)
	}
	return out
}

func TestHistory(t *testing.T) {
	t.Parallel()
	h, f := setup(t)
	tests := []struct {
		path       string
		want       []int64
		wantCursor string
	}{
		{"/u-active/history", []int64{1, 2, 5, 6, 10}, ""},
		{"/u-active/history?limit=2", []int64{1, 2}, "5"},
		{"/u-active/history?limit=2&cursor=5", []int64{5, 6}, "10"},
		{"/u-active/history?limit=2&cursor=10", []int64{10}, ""},
		{"/u-active/history?cursor=3", []int64{5, 6, 10}, ""},
		{"/u-active/history?cursor=6&limit=1", []int64{6}, "10"},
		{"/u-active/history?cursor=11", []int64{}, ""},
		{"/u-pre/history", []int64{3}, ""},
		// Records without an identity: the user's history still shows.
		{"/gone/history", []int64{7, 8}, ""},
		{"/gone/history?cursor=9", []int64{}, ""},
		// An identity without records.
		{"/u-await1/history", []int64{}, ""},
		{"/u-await1/history?cursor=3", []int64{}, ""},
		{"/u-active2/history", []int64{9}, ""},
	}
	for _, tc := range tests {
		var hist identityapi.History
		getJSON(t, h, identityapi.Prefix+tc.path, http.StatusOK, &hist)
		if got := recordIDs(hist); !slices.Equal(got, tc.want) || hist.NextCursor != tc.wantCursor {
			t.Errorf("GET %s = %v cursor %q, want %v cursor %q", tc.path, got, hist.NextCursor, tc.want, tc.wantCursor)
		}
		for _, r := range hist.Records {
			want := f.recs[r.Seq]
			if r.ResourceID != want.ResourceID || r.Action != want.Action || r.Hash != hex.EncodeToString(want.Hash) {
				t.Errorf("GET %s: record %d = %+v, want %+v", tc.path, r.Seq, r, want)
			}
		}
	}
	for _, path := range []string{"/nobody/history", "/nobody/history?cursor=5", "/u-activ/history"} {
		wantError(t, h, http.MethodGet, identityapi.Prefix+path, http.StatusNotFound, "not_found")
	}
	for _, query := range []string{"?cursor=0", "?cursor=-2", "?cursor=x", "?cursor=1e3", "?limit=0", "?limit=x"} {
		wantError(t, h, http.MethodGet, identityapi.Prefix+"/u-active/history"+query, http.StatusBadRequest, "invalid_request")
	}
}

func TestHistoryRecord(t *testing.T) {
	t.Parallel()
	h, f := setup(t)
	r := do(t, h, http.MethodGet, identityapi.Prefix+"/u-active/history?cursor=2&limit=1")
	rec := f.recs[2]
	if rec.BeforeDigest != "" || rec.AfterDigest == "" {
		t.Fatalf("fixture record 2 digests: %q, %q", rec.BeforeDigest, rec.AfterDigest)
	}
	sameJSON(t, "history record", r.body, fmt.Sprintf(`{"records": [{
		"seq": 2, "time": "2026-03-01T12:00:01.12345679Z", "actor": "token:hr", "action": "lifecycle.joiner",
		"resourceType": "Identity", "resourceId": "u-active", "requestId": "req-2",
		"beforeDigest": "", "afterDigest": %q, "hash": %q}], "next_cursor": "5"}`,
		rec.AfterDigest, hex.EncodeToString(rec.Hash)))
	if len(rec.Hash) != 32 {
		t.Errorf("fixture hash is %d bytes", len(rec.Hash))
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	h, _ := setup(t)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		for _, path := range []string{"", "/u-active", "/u-active/history"} {
			wantError(t, h, method, identityapi.Prefix+path, http.StatusMethodNotAllowed, "method_not_allowed")
			if allow := do(t, h, method, identityapi.Prefix+path).header.Get("Allow"); allow != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q", method, path, allow)
			}
		}
	}
	for _, path := range []string{"/", "/u-active/history/1", "/u-active/actual", "/api/v1/other"} {
		target := path
		if !strings.HasPrefix(path, "/api/") {
			target = identityapi.Prefix + path
		}
		wantError(t, h, http.MethodGet, target, http.StatusNotFound, "not_found")
	}
	// HEAD answers like GET, without a body.
	r := do(t, h, http.MethodHead, identityapi.Prefix+"/u-active")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD: status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
}

// TestInternalError closes the store under the handler: the client gets a
// generic 500, the log gets the cause.
func TestInternalError(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	var logs bytes.Buffer
	h := identityapi.Handler(s, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", "/u-active", "/u-active/history"} {
		logs.Reset()
		e := wantError(t, h, http.MethodGet, identityapi.Prefix+path, http.StatusInternalServerError, "internal")
		if e.Message != "internal error" {
			t.Errorf("GET %s: message %q, want the generic one", path, e.Message)
		}
		if !strings.Contains(logs.String(), "sqlite") || !strings.Contains(logs.String(), "path="+identityapi.Prefix+path) {
			t.Errorf("GET %s: log does not show the cause: %s", path, logs.String())
		}
	}
}
