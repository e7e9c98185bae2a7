package auth

import (
	"context"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jmlgate/jmlgate/internal/config"
	"github.com/jmlgate/jmlgate/internal/store"
)

func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	var static []config.StaticToken
	for i := range 10 {
		static = append(static, config.StaticToken{Name: fmt.Sprint("t", i), SHA256: hexHash(fmt.Sprint("static-", i)), Scopes: []string{"scim"}})
	}
	src := newMapSource(&store.Token{ID: "1", Name: "ci", Hash: HashToken("stored-secret"), Scopes: []string{"scim"}})
	k := keys()
	srv := newJWKSServerB(b, jwks("ed1", "rsa1"))
	cfg := jwtConfig(func(j *config.JWT) { j.JWKSURL = srv })
	cfg.Tokens = static
	a, err := New(cfg, src, func() time.Time { return t0 })
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct{ name, bearer string }{
		{"config-token-of-10", "static-9"},
		{"store-token-cached", "stored-secret"},
		{"jwt-EdDSA", sign(b, jose.EdDSA, k.ed, "ed1", baseClaims(nil))},
		{"jwt-RS256", sign(b, jose.RS256, k.rsa, "rsa1", baseClaims(nil))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if _, err := a.Authenticate(ctx, c.bearer); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(ctx, c.bearer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
