package scimtarget_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/scimtarget"
	"github.com/jmlgate/jmlgate/internal/testhttp"
)

const token = "t0ken"

func start(t *testing.T, opts scimtarget.Options) *scimtarget.Server {
	t.Helper()
	opts.Token = token
	s, err := scimtarget.Start(t.Context(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// call sends one SCIM request and returns the status and decoded body.
func call(ctx context.Context, t *testing.T, s *scimtarget.Server, method, path, body string) (int, map[string]any, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := testhttp.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, nil
}

func mustCall(t *testing.T, s *scimtarget.Server, method, path, body string, want int) map[string]any {
	t.Helper()
	status, out, err := call(t.Context(), t, s, method, path, body)
	if err != nil || status != want {
		t.Fatalf("%s %s: %d %v (want %d): %v", method, path, status, out, want, err)
	}
	return out
}

const patchSchema = `"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`

// The history records what each state-changing request did to which user,
// in order, as the real SCIM requests a connector sends express it.
func TestHistoryClassifiesRequests(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []scimtarget.Op
	)
	s := start(t, scimtarget.Options{OnOp: func(o scimtarget.Op) { mu.Lock(); seen = append(seen, o); mu.Unlock() }})
	uid := mustCall(t, s, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada","active":true}`, 201)["id"].(string)
	gid := mustCall(t, s, "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"eng"}`, 201)["id"].(string)
	mustCall(t, s, "PATCH", "/Groups/"+gid, `{`+patchSchema+`,"Operations":[{"op":"add","path":"members","value":[{"value":"`+uid+`"}]}]}`, 200)
	mustCall(t, s, "PATCH", "/Users/"+uid, `{`+patchSchema+`,"Operations":[{"op":"Replace","path":"active","value":"False"}]}`, 200)
	mustCall(t, s, "PATCH", "/Groups/"+gid, `{`+patchSchema+`,"Operations":[{"op":"remove","path":"members[value eq \"`+uid+`\"]"}]}`, 200)
	mustCall(t, s, "PATCH", "/Users/"+uid, `{`+patchSchema+`,"Operations":[{"op":"replace","value":{"active":true}}]}`, 200)
	mustCall(t, s, "PATCH", "/Users/"+uid, `{`+patchSchema+`,"Operations":[{"op":"replace","path":"displayName","value":"Ada"}]}`, 200)
	// Refused before the SCIM service: counted, not an op.
	s.FailNext(http.StatusTooManyRequests)
	mustCall(t, s, "PATCH", "/Users/"+uid, `{`+patchSchema+`,"Operations":[{"op":"replace","path":"active","value":false}]}`, 429)
	// Reached the service but failed: an op with its status.
	mustCall(t, s, "PATCH", "/Users/nope", `{`+patchSchema+`,"Operations":[{"op":"replace","path":"active","value":false}]}`, 404)
	mustCall(t, s, "DELETE", "/Users/"+uid, "", 204)

	type op struct{ kind, user, group string }
	want := []op{
		{scimtarget.OpCreate, uid, ""}, {scimtarget.OpCreateGroup, "", gid}, {scimtarget.OpAddMember, uid, gid},
		{scimtarget.OpDisable, uid, ""}, {scimtarget.OpRemoveMember, uid, gid}, {scimtarget.OpEnable, uid, ""},
		{scimtarget.OpUpdate, uid, ""}, {scimtarget.OpDisable, "nope", ""}, {scimtarget.OpDelete, uid, ""},
	}
	ops := s.Ops()
	var got []op
	for i, o := range ops {
		got = append(got, op{o.Kind, o.User, o.Group})
		if o.Seq != int64(i+1) {
			t.Errorf("op %d has Seq %d", i, o.Seq)
		}
		if wantApplied := o.User != "nope"; o.Applied() != wantApplied {
			t.Errorf("op %+v: Applied %v", o, o.Applied())
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ops\n got %v\nwant %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, ops) {
		t.Fatalf("OnOp saw %v, Ops %v", seen, ops)
	}
	if c := s.Counts(); c[scimtarget.OpDisable] != 1 || c[scimtarget.OpAddMember] != 1 || c[scimtarget.OpCreate] != 1 || len(c) != 8 {
		t.Errorf("counts: %v", c)
	}
	if h := s.History(uid); len(h) != 7 || h[0].Kind != scimtarget.OpCreate || h[6].Kind != scimtarget.OpDelete {
		t.Fatalf("history of %s: %+v", uid, h)
	}
	if s.Requests() != int64(len(want)+1) {
		t.Fatalf("requests = %d, want %d", s.Requests(), len(want)+1)
	}
}

// A paused target holds requests until Resume; a client that gives up
// meanwhile changed nothing.
func TestPauseHoldsRequests(t *testing.T) {
	t.Parallel()
	s := start(t, scimtarget.Options{})
	user := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"grace","active":true}`
	s.Pause()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if status, _, err := call(ctx, t, s, "POST", "/Users", user); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("paused target answered: %d %v", status, err)
	}
	done := make(chan int, 1)
	go func() {
		status, _, _ := call(t.Context(), t, s, "POST", "/Users", user)
		done <- status
	}()
	for s.Requests() < 2 {
		time.Sleep(time.Millisecond)
	}
	s.Resume()
	if status := <-done; status != 201 {
		t.Fatalf("after resume: %d", status)
	}
	if _, found, err := s.Account(t.Context(), "grace"); err != nil || !found {
		t.Fatalf("account after resume: %v %v", found, err)
	}
	if ops := s.Ops(); len(ops) != 1 || ops[0].Kind != scimtarget.OpCreate {
		t.Fatalf("ops: %+v", ops)
	}
}

// FastMembership answers membership PATCHes as the SCIM server does (only
// with 204 instead of the group): same outcomes, same errors.
func TestFastMembershipMatchesSCIMServer(t *testing.T) {
	t.Parallel()
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprintf("fast=%v", fast), func(t *testing.T) {
			t.Parallel()
			s := start(t, scimtarget.Options{FastMembership: fast})
			uid := mustCall(t, s, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada","active":true}`, 201)["id"].(string)
			gid := mustCall(t, s, "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"eng"}`, 201)["id"].(string)
			add := func(id string) string {
				return `{` + patchSchema + `,"Operations":[{"op":"add","path":"members","value":[{"value":"` + id + `"}]}]}`
			}
			remove := `{` + patchSchema + `,"Operations":[{"op":"remove","path":"members[value eq \"` + uid + `\"]"}]}`
			steps := []struct {
				path, body string
				ok         bool   // 200 or 204
				status     int    // when not ok
				scimType   string // when not ok
				groups     []string
			}{
				{"/Groups/" + gid, add(uid), true, 0, "", []string{"eng"}},
				{"/Groups/" + gid, add(uid), true, 0, "", []string{"eng"}},
				{"/Groups/" + gid, add("nobody"), false, 400, "invalidValue", []string{"eng"}},
				{"/Groups/nogroup", add(uid), false, 404, "", []string{"eng"}},
				{"/Groups/" + gid, remove, true, 0, "", nil},
				{"/Groups/" + gid, remove, true, 0, "", nil},
			}
			for i, st := range steps {
				status, out, err := call(t.Context(), t, s, "PATCH", st.path, st.body)
				if err != nil {
					t.Fatal(err)
				}
				scimType, _ := out["scimType"].(string)
				if st.ok != (status == 200 || status == 204) || (!st.ok && (status != st.status || scimType != st.scimType)) {
					t.Fatalf("step %d: %d %v", i, status, out)
				}
				a, _, err := s.Account(t.Context(), "ada")
				if err != nil || !slices.Equal(a.Groups, st.groups) {
					t.Fatalf("step %d: groups %v (%v), want %v", i, a.Groups, err, st.groups)
				}
			}
			if c := s.Counts(); c[scimtarget.OpAddMember] != 2 || c[scimtarget.OpRemoveMember] != 2 {
				t.Fatalf("counts %v", c)
			}
		})
	}
}
