package events_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/events"
	"github.com/jmlgate/jmlgate/internal/store"
)

// BenchmarkReceive measures one accepted SET end to end through the
// handler: signing it (Ed25519, in the loop), verifying, resolving the
// subject and the transaction that records its jti. The subject already
// has MFA, so the identity itself is not rewritten.
//
//   - userName: the email is a userName (an index lookup).
//   - emailScan/N: the email is only in a user's emails, among N users
//     (a scan of every user document).
func BenchmarkReceive(b *testing.B) {
	b.Run("userName", func(b *testing.B) {
		e := newEnv(b)
		e.prove("ada@example.com")
		benchPush(b, e, "ada@example.com")
	})
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("emailScan/%d", n), func(b *testing.B) {
			e := newEnv(b)
			seedUsers(b, e, n)
			e.prove("bob")
			benchPush(b, e, "bob.smith@example.com")
		})
	}
}

func benchPush(b *testing.B, e *env, addr string) {
	for b.Loop() {
		set := sign(e.t, fileKey, "", e.claims(issFile, "app", "create", email(addr)))
		if code, body := e.push(events.ContentType, set); code != http.StatusAccepted {
			b.Fatalf("%d %v", code, body)
		}
	}
}

// seedUsers adds n users with one email each, written straight to the
// store in one transaction.
func seedUsers(b *testing.B, e *env, n int) {
	ctx := context.Background()
	now := e.clock.now()
	err := e.st.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			name := fmt.Sprintf("user%06d", i)
			data := fmt.Appendf(nil, `{"userName":%q,"active":true,"name":{"givenName":"User","familyName":"%d"},`+
				`"emails":[{"value":"%s@example.com","type":"work","primary":true}]}`, name, i, name)
			r := &store.Resource{Type: store.TypeUser, ID: fmt.Sprintf("seed-%06d", i), Name: name, Display: name,
				Version: 1, Created: now.Add(time.Duration(i)), LastModified: now, Data: data}
			if err := tx.CreateResource(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
