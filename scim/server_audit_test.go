package scim_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/jmlgate/jmlgate/internal/audit"
	"github.com/jmlgate/jmlgate/internal/store"
)

// TestServerAudit walks one store through a sequence of writes and checks
// after each step exactly which audit records it appended. The steps share
// the audit chain, so they run in order.
func TestServerAudit(t *testing.T) {
	t.Parallel()
	env := newSrvEnv(t, nil)

	type wantRec struct {
		action, typ string
		id          func() string // resource id
		before      bool          // BeforeDigest set
		after       bool          // AfterDigest set
	}
	var userID, user2ID, groupID string
	uid := func() string { return userID }
	gid := func() string { return groupID }
	seen := 0

	steps := []struct {
		name  string
		actor string
		run   func(t *testing.T)
		want  []wantRec
		// chained: the first new record's BeforeDigest must equal the
		// AfterDigest of the previous record about the same resource.
		chained bool
	}{
		{
			name: "create user", actor: "token:alice",
			run: func(t *testing.T) {
				userID = idOf(env.createUser("audit.user@example.com", map[string]any{"title": "Engineer"}))
				user2ID = idOf(env.createUser("audit.other@example.com", nil))
			},
			want: []wantRec{
				{"scim.user.create", "User", uid, false, true},
				{"scim.user.create", "User", func() string { return user2ID }, false, true},
			},
		},
		{name: "create conflict", run: func(t *testing.T) {
			env.do(http.MethodPost, "/Users", userData("AUDIT.USER@example.com")).want(t, http.StatusConflict)
		}},
		{name: "create invalid", run: func(t *testing.T) {
			env.do(http.MethodPost, "/Users", map[string]any{"schemas": []string{userURN}}).want(t, http.StatusBadRequest)
		}},
		{
			name: "replace user", actor: "jwt:okta|svc", chained: true,
			run: func(t *testing.T) {
				env.do(http.MethodPut, "/Users/"+userID, map[string]any{"schemas": []string{userURN}, "userName": "audit.user@example.com", "title": "Manager"}).want(t, 200)
			},
			want: []wantRec{{"scim.user.replace", "User", uid, true, true}},
		},
		{name: "unchanged replace", run: func(t *testing.T) {
			env.do(http.MethodPut, "/Users/"+userID, map[string]any{"schemas": []string{userURN}, "userName": "audit.user@example.com", "title": "Manager"}).want(t, 200)
		}},
		{name: "replace with stale If-Match", run: func(t *testing.T) {
			env.do(http.MethodPut, "/Users/"+userID, userData("audit.user@example.com"), "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
		}},
		{
			name: "patch user", chained: true,
			run: func(t *testing.T) {
				env.do(http.MethodPatch, "/Users/"+userID, patchOps(op("replace", "title", "Director"))).want(t, 200)
			},
			want: []wantRec{{"scim.user.patch", "User", uid, true, true}},
		},
		{name: "unchanged patch", run: func(t *testing.T) {
			env.do(http.MethodPatch, "/Users/"+userID, patchOps(op("replace", "title", "Director"), op("remove", "nickName", nil))).want(t, 200)
		}},
		{name: "failed patch", run: func(t *testing.T) {
			env.do(http.MethodPatch, "/Users/"+userID, patchOps(op("replace", "title", "CEO"), op("replace", "nope", "x"))).want(t, 400)
		}},
		{name: "patch to a taken userName", run: func(t *testing.T) {
			env.do(http.MethodPatch, "/Users/"+userID, patchOps(op("replace", "userName", "audit.other@example.com"))).want(t, 409)
		}},
		{
			name: "create group",
			run: func(t *testing.T) {
				// The group starts with the greater id and "add member" adds
				// the smaller, so the PATCH's member list is not in the
				// store's order: the digests must not depend on order.
				groupID = idOf(env.createGroup("audit-group", max(userID, user2ID)))
			},
			want: []wantRec{{"scim.group.create", "Group", gid, false, true}},
		},
		{name: "re-add existing member", run: func(t *testing.T) {
			env.do(http.MethodPatch, "/Groups/"+groupID, patchOps(op("add", "members", []any{map[string]any{"value": max(userID, user2ID)}}))).want(t, 200)
		}},
		{name: "add unknown member", run: func(t *testing.T) {
			env.do(http.MethodPatch, "/Groups/"+groupID, patchOps(op("add", "members", []any{map[string]any{"value": "nobody"}}))).want(t, 400)
		}},
		{
			name: "add member", chained: true,
			run: func(t *testing.T) {
				env.do(http.MethodPatch, "/Groups/"+groupID, patchOps(op("add", "members", []any{map[string]any{"value": min(userID, user2ID)}}))).want(t, 200)
			},
			want: []wantRec{{"scim.group.patch", "Group", gid, true, true}},
		},
		{
			name: "replace group", chained: true,
			run: func(t *testing.T) {
				env.do(http.MethodPut, "/Groups/"+groupID, groupData("audit-group-renamed", userID)).want(t, 200)
			},
			want: []wantRec{{"scim.group.replace", "Group", gid, true, true}},
		},
		{name: "reads", run: func(t *testing.T) {
			env.do(http.MethodGet, "/Users/"+userID, nil).want(t, 200)
			env.do(http.MethodGet, "/Users?filter=userName pr", nil).want(t, 200)
			env.do(http.MethodPost, "/Groups/.search", map[string]any{"schemas": []string{searchURN}}).want(t, 200)
			env.do(http.MethodGet, "/Schemas", nil).want(t, 200)
		}},
		{
			name: "delete user", actor: "token:offboarding",
			run: func(t *testing.T) {
				env.do(http.MethodDelete, "/Users/"+user2ID, nil).want(t, http.StatusNoContent)
			},
			want: []wantRec{{"scim.user.delete", "User", func() string { return user2ID }, true, false}},
		},
		{
			// userID is the group's only member: the group changes too, and
			// its record continues the group's own digest chain.
			name: "delete a group member", actor: "token:offboarding",
			run: func(t *testing.T) {
				env.do(http.MethodDelete, "/Users/"+userID, nil).want(t, http.StatusNoContent)
			},
			want: []wantRec{
				{"scim.user.delete", "User", uid, true, false},
				{"scim.group.member.remove", "Group", gid, true, true},
			},
		},
		{
			name: "the group's next change chains on the cascade", chained: true,
			run: func(t *testing.T) {
				env.do(http.MethodPatch, "/Groups/"+groupID, patchOps(op("replace", "displayName", "audit-group-after"))).want(t, 200)
			},
			want: []wantRec{{"scim.group.patch", "Group", gid, true, true}},
		},
		{name: "delete missing", run: func(t *testing.T) {
			env.do(http.MethodDelete, "/Users/"+user2ID, nil).want(t, http.StatusNotFound)
		}},
		{name: "delete with stale If-Match", run: func(t *testing.T) {
			env.do(http.MethodDelete, "/Groups/"+groupID, nil, "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
		}},
		{
			name: "bulk appends one record per successful operation",
			run: func(t *testing.T) {
				res := bulkResults(t, env.do(http.MethodPost, "/Bulk", bulkReq(0,
					bulkOp("POST", "/Users", "b1", userData("audit.bulk@example.com")),
					bulkOp("POST", "/Users", "b2", userData("AUDIT.bulk@example.com")), // taken by b1
					bulkOp("DELETE", "/Groups/"+groupID, "", nil),
				)))
				wantStatuses(t, res, "201", "409", "204")
			},
			want: []wantRec{
				{"scim.user.create", "User", func() string { return "" }, false, true},
				{"scim.group.delete", "Group", gid, true, false},
			},
		},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			actor := srvActor
			if st.actor != "" {
				actor = st.actor
				env.actor = actor
				defer func() { env.actor = "" }()
			}
			st.run(t)
			recs := env.audit()
			older, fresh := recs[:seen], recs[seen:]
			seen = len(recs)
			if len(fresh) != len(st.want) {
				for _, r := range fresh {
					t.Logf("appended: %s %s %s", r.Action, r.ResourceType, r.ResourceID)
				}
				t.Fatalf("%d audit records appended, want %d", len(fresh), len(st.want))
			}
			for i, w := range st.want {
				r := fresh[i]
				if r.Action != w.action || r.ResourceType != w.typ || r.Actor != actor || r.RequestID != "req-test" {
					t.Errorf("record %d = %s %s by %q (request %q), want %s %s by %q", i, r.Action, r.ResourceType, r.Actor, r.RequestID, w.action, w.typ, actor)
				}
				if id := w.id(); id != "" && r.ResourceID != id {
					t.Errorf("record %d resource id = %q, want %q", i, r.ResourceID, id)
				}
				if (r.BeforeDigest != "") != w.before || (r.AfterDigest != "") != w.after {
					t.Errorf("record %d digests before=%q after=%q, want before set %v after set %v", i, r.BeforeDigest, r.AfterDigest, w.before, w.after)
				}
				if w.before && w.after && r.BeforeDigest == r.AfterDigest {
					t.Errorf("record %d: before and after digests are equal for a change", i)
				}
			}
			if st.chained {
				var prev *store.AuditRecord
				for _, r := range older {
					if r.ResourceID == fresh[0].ResourceID {
						prev = r
					}
				}
				if prev == nil {
					t.Fatalf("no earlier record about %s", fresh[0].ResourceID)
				}
				if fresh[0].BeforeDigest != prev.AfterDigest {
					t.Errorf("BeforeDigest %s does not continue the previous AfterDigest %s (%s)", fresh[0].BeforeDigest, prev.AfterDigest, prev.Action)
				}
			}
		})
		if !ok {
			break
		}
	}

	n, err := audit.VerifyStore(context.Background(), env.st)
	if err != nil || n != int64(seen) {
		t.Errorf("VerifyStore = %d, %v; want %d records and an intact chain", n, err, seen)
	}
}
