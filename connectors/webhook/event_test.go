package webhook

import (
	"context"
	"net/http"
	"testing"

	"github.com/jmlgate/jmlgate/connectors"
)

func TestEventID(t *testing.T) {
	t.Parallel()
	acct := func(display string) *EventAccount {
		return &EventAccount{IdentityID: "id-1", UserName: "ada@example.com", DisplayName: display}
	}
	grant := Event{Type: TypeGrant, Connector: "app", Ref: "id-1", Entitlement: "role:viewer"}
	ensure := Event{Type: TypeEnsure, Connector: "app", Ref: "id-1", Account: acct("Ada")}
	with := func(ev Event, f func(*Event)) Event { f(&ev); return ev }
	tests := []struct {
		name   string
		a, b   Event
		ga, gb int64
		same   bool
	}{
		{"same grant, same generation (a retry)", grant, grant, 7, 7, true},
		{"retry signed later", grant, with(grant, func(e *Event) { e.IssuedAt = 99; e.JTI = "x" }), 7, 7, true},
		{"same ensure, same generation", ensure, ensure, 7, 7, true},
		{"different entitlement", grant, with(grant, func(e *Event) { e.Entitlement = "role:editor" }), 7, 7, false},
		{"different generation (a later job)", grant, grant, 7, 8, false},
		{"grant vs revoke", grant, with(grant, func(e *Event) { e.Type = TypeRevoke }), 7, 7, false},
		{"different ref", grant, with(grant, func(e *Event) { e.Ref = "id-2" }), 7, 7, false},
		{"different connector", grant, with(grant, func(e *Event) { e.Connector = "app2" }), 7, 7, false},
		{"ensure with changed attributes", ensure, with(ensure, func(e *Event) { e.Account = acct("Ada L.") }), 7, 7, false},
		{"field boundaries", with(grant, func(e *Event) { e.Ref = "id-1r"; e.Entitlement = "ole:viewer" }),
			with(grant, func(e *Event) { e.Ref = "id-1"; e.Entitlement = "role:viewer" }), 7, 7, false},
		{"generation zero is a generation", grant, grant, 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := eventID(&tc.a, tc.ga, true)
			if err != nil {
				t.Fatal(err)
			}
			b, err := eventID(&tc.b, tc.gb, true)
			if err != nil {
				t.Fatal(err)
			}
			if (a == b) != tc.same {
				t.Errorf("ids %s and %s: same=%v, want %v", a, b, a == b, tc.same)
			}
		})
	}
	t.Run("no generation: every call its own id", func(t *testing.T) {
		t.Parallel()
		a, _ := eventID(&grant, 0, false)
		b, _ := eventID(&grant, 0, false)
		if a == b || len(a) != 43 {
			t.Errorf("ids without generation %q and %q: want two distinct 256-bit ids", a, b)
		}
	})
}

// TestRetriedJobIsDeduplicated drives the connector the way the dispatcher
// does: a job whose acknowledgement was lost is sent again with the same
// generation, the receiver recognises the jti and does not apply it twice;
// a later job repeating the operation is applied.
func TestRetriedJobIsDeduplicated(t *testing.T) {
	t.Parallel()
	ks, jwks := newTestKeySet(t)
	rc := newReceiver(t, jwks.URL, "app", "", false)
	conn := openConn(t, ks, rc, "app", nil)
	bg := context.Background()

	ref, err := conn.EnsureAccount(WithGeneration(bg, 1), testAccount(0))
	if err != nil {
		t.Fatal(err)
	}
	job := WithGeneration(bg, 2)
	rc.LoseAck(http.StatusBadGateway)
	err = conn.Grant(job, ref, "role:viewer")
	if cl, _ := connectors.ClassOf(err); err == nil || cl != connectors.Retryable {
		t.Fatalf("Grant with a lost acknowledgement: %v (class %v), want a retryable error", err, cl)
	}
	if err := conn.Grant(job, ref, "role:viewer"); err != nil {
		t.Fatalf("retried Grant: %v", err)
	}
	if err := conn.Revoke(WithGeneration(bg, 3), ref, "role:viewer"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Grant(WithGeneration(bg, 4), ref, "role:viewer"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Grant(WithGeneration(bg, 4), ref, "role:editor"); err != nil {
		t.Fatal(err)
	}

	ds := rc.Deliveries()
	if len(ds) != 6 {
		t.Fatalf("%d deliveries, want 6: %+v", len(ds), ds)
	}
	first, retry, regrant, other := ds[1], ds[2], ds[4], ds[5]
	if first.ev.JTI != retry.ev.JTI || first.dup || !retry.dup {
		t.Errorf("retry: jti %s then %s (dup %v, %v), want the same jti and the retry dropped",
			first.ev.JTI, retry.ev.JTI, first.dup, retry.dup)
	}
	if regrant.ev.JTI == first.ev.JTI || regrant.dup {
		t.Error("a later job granting again got the first grant's jti, so the receiver dropped it")
	}
	if other.ev.JTI == regrant.ev.JTI {
		t.Error("different entitlements in one job share a jti")
	}
	st, _ := rc.Inspect(t, ref)
	if len(st.Entitlements) != 2 {
		t.Errorf("receiver holds %q, want both roles", st.Entitlements)
	}
}
