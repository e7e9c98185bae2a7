package webhook

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"hash/fnv"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

// Event types, the "type" claim.
const (
	TypeEnsure  = "account.ensure"
	TypeDisable = "account.disable"
	TypeGrant   = "entitlement.grant"
	TypeRevoke  = "entitlement.revoke"
)

// Wire constants of the webhook protocol.
const (
	// MediaType is the Content-Type of every delivery: the body is one
	// JWS in compact serialization.
	MediaType = "application/jose"
	// TokenType is the "typ" of the JWS protected header; receivers
	// should check it so no other JWS signed by the same keys passes for
	// an event.
	TokenType = "jmlgate-event+jwt"
	// Issuer is the "iss" claim of every event.
	Issuer = "jmlgate"
	// Lifetime is how long after signing an event expires ("exp"). Every
	// attempt is signed afresh, so a retry is never stale; an event
	// captured on the way cannot be replayed after it (say, a grant
	// replayed after its revocation).
	Lifetime = 5 * time.Minute
)

// Event is the JWS payload of one delivery. A receiver:
//
//  1. checks Content-Type MediaType and the header "typ" TokenType and
//     "alg" EdDSA, and verifies the signature with the key of the header's
//     "kid" from jmlgate's GET /api/v1/webhooks/jwks.json (fetching it again
//     when the kid is unknown: keys rotate);
//  2. rejects an event past its ExpiresAt (allowing for clock skew);
//  3. checks Issuer and that Connector is the name it is configured under in
//     jmlgate (the keys are gateway-wide, so an event meant for another
//     receiver verifies too);
//  4. drops an event whose JTI it has already applied, answering 2xx
//     (remembering ids for at least Lifetime also defeats a replay within
//     it);
//  5. applies it and answers 2xx. An account.disable or entitlement.revoke
//     for an account or entitlement the receiver does not have is already
//     done: answer 2xx, never 404. jmlgate reads 404 and 410 to a disable,
//     revoke or ensure as "the URL is wrong" (a permanent failure), so that
//     a revocation that reached the wrong place never counts as done; to
//     an entitlement.grant, 404 means "no such account" and jmlgate ensures
//     the account again before granting. 429 and 5xx are retried, honouring
//     Retry-After; any other status is a permanent failure a human looks
//     at.
//
// Every event states what must be true, not a change to add, so applying a
// retried event twice is harmless; deduplication spares the receiver
// repeated side effects, and exp with remembered ids stops an old event
// from being replayed over a newer one.
type Event struct {
	// JTI identifies the logical operation; see WithGeneration.
	JTI string `json:"jti"`
	// Issuer is always "jmlgate".
	Issuer string `json:"iss"`
	// IssuedAt is when this attempt was signed, in Unix seconds: a retry
	// carries the same JTI and a later IssuedAt.
	IssuedAt int64 `json:"iat"`
	// ExpiresAt is IssuedAt plus Lifetime, in Unix seconds.
	ExpiresAt int64 `json:"exp"`
	// Type is one of TypeEnsure, TypeDisable, TypeGrant, TypeRevoke.
	Type string `json:"type"`
	// Connector is the name of the jmlgate connector that sent the event.
	Connector string `json:"connector"`
	// Ref is the account: the jmlgate identity id.
	Ref string `json:"ref"`
	// Account is set for TypeEnsure only: create the account, or update
	// and re-enable it.
	Account *EventAccount `json:"account,omitempty"`
	// Entitlement is set for TypeGrant and TypeRevoke only; its meaning
	// belongs to the receiver.
	Entitlement string `json:"entitlement,omitempty"`
}

// EventAccount is the person an account.ensure event provisions.
type EventAccount struct {
	IdentityID  string `json:"identity_id"`
	UserName    string `json:"user_name"`
	DisplayName string `json:"display_name,omitempty"`
	GivenName   string `json:"given_name,omitempty"`
	FamilyName  string `json:"family_name,omitempty"`
	Email       string `json:"email,omitempty"`
}

type generationKey struct{}

// WithGeneration returns a ctx that makes the events sent with it carry a
// deterministic id (the "jti" claim), so a receiver can drop duplicates.
//
// The id is base64url(SHA-256) over the connector name, the event type, the
// ref, the entitlement, for account.ensure the account's fields, and n.
// jmlgate's dispatcher does not call this: it passes its delivery id and
// run through connectors.WithDelivery, from which the generation is
// derived. An operation sent twice within one run (a lost response
// retried by the transport) keeps its jti; a later run (a retry included) or delivery,
// which may repeat an operation on purpose (grant, revoke, grant again;
// ensure after disable for a rehire), gets a new one. Two events with the
// same jti thus always say the same thing, and a receiver that dedupes on
// jti never drops an operation meant anew (re-applying an idempotent one
// is harmless).
//
// Without a generation in ctx every call gets a random jti: the connector
// cannot tell a retry from a new operation that happens to repeat an old
// one, and an id derived from the operation alone would make a deduplicating
// receiver drop the second grant of grant/revoke/grant, or the re-enable of
// a rehire. Such events are still safe to apply twice (each is idempotent),
// they only cannot be deduplicated.
func WithGeneration(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, generationKey{}, n)
}

// generation returns the generation in ctx, if any: one set with
// WithGeneration, else one derived from the dispatcher's delivery id and
// run (connectors.WithDelivery).
func generation(ctx context.Context) (int64, bool) {
	if n, ok := ctx.Value(generationKey{}).(int64); ok {
		return n, true
	}
	if id, run, ok := connectors.DeliveryFrom(ctx); ok {
		h := fnv.New64a()
		_ = binary.Write(h, binary.BigEndian, [2]int64{id, run})
		return int64(h.Sum64()), true
	}
	return 0, false
}

// eventID returns the jti of ev (whose JTI, Issuer, IssuedAt and ExpiresAt
// are ignored) under generation gen, or a random id when there is none.
func eventID(ev *Event, gen int64, haveGen bool) (string, error) {
	if !haveGen {
		var b [sha256.Size]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		return base64.RawURLEncoding.EncodeToString(b[:]), nil
	}
	h := sha256.New()
	field(h, "jmlgate-webhook-event-v1")
	field(h, ev.Connector)
	field(h, ev.Type)
	field(h, ev.Ref)
	field(h, ev.Entitlement)
	if a := ev.Account; a != nil {
		for _, s := range []string{a.IdentityID, a.UserName, a.DisplayName, a.GivenName, a.FamilyName, a.Email} {
			field(h, s)
		}
	}
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], uint64(gen))
	h.Write(g[:])
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

// field writes s length-prefixed, so no two field lists hash alike.
func field(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}
