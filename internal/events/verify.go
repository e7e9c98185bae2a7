package events

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jmlgate/jmlgate/internal/config"
)

// asymmetric is every signature algorithm a SET may use: never "none" nor
// an HMAC, so a public key can never serve as a shared secret.
var asymmetric = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// maxJTI bounds a jti, which is stored.
const maxJTI = 512

// issuer is one trusted transmitter, ready to verify.
type issuer struct {
	name, audience string
	algs           []jose.SignatureAlgorithm
	maxAge         time.Duration
	keys           *keySet
}

func newIssuer(c config.EventIssuer, client *http.Client) (*issuer, error) {
	d := config.DefaultEventIssuer()
	if len(c.Algorithms) == 0 {
		c.Algorithms = d.Algorithms
	}
	if c.MaxAge <= 0 {
		c.MaxAge = d.MaxAge
	}
	if c.JWKSRefresh <= 0 {
		c.JWKSRefresh = d.JWKSRefresh
	}
	switch {
	case c.Issuer == "":
		return nil, fmt.Errorf("issuer is required")
	case c.Audience == "":
		return nil, fmt.Errorf("audience is required")
	case (c.JWKSFile == "") == (c.JWKSURL == ""):
		return nil, fmt.Errorf("set exactly one of jwks_file and jwks_url")
	}
	is := &issuer{name: c.Issuer, audience: c.Audience, maxAge: c.MaxAge.D()}
	for _, a := range c.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		if !slices.Contains(asymmetric, alg) {
			return nil, fmt.Errorf("algorithm %q is not allowed (only asymmetric algorithms)", a)
		}
		is.algs = append(is.algs, alg)
	}
	ks, err := newKeySet(c.JWKSFile, c.JWKSURL, c.JWKSRefresh.D(), client)
	if err != nil {
		return nil, err
	}
	is.keys = ks
	return is, nil
}

// verifiedSET is a SET whose signature, issuer, audience, times and jti
// form were checked. Its jti is not recorded yet.
type verifiedSET struct {
	iss    *issuer
	jti    string
	iat    time.Time
	events map[string]json.RawMessage
	subID  json.RawMessage // top-level sub_id (RFC 9493), nil if absent
}

// header is the part of a JWS protected header read before parsing.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ any    `json:"typ"`
}

// verify checks a compact JWS as a SET at now. Errors are *setError
// (the SET is invalid), or wrap errUnavailable.
func (r *Receiver) verify(ctx context.Context, compact string, now time.Time) (*verifiedSET, error) {
	if compact == "" {
		return nil, refuse(ErrInvalidRequest, "empty body: want a SET as a compact JWS")
	}
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return nil, refuse(ErrInvalidRequest, "not a compact JWS: want 3 dot-separated parts, got %d", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	var h header
	if err == nil {
		err = json.Unmarshal(raw, &h)
	}
	if err != nil {
		return nil, refuse(ErrInvalidRequest, "JWS protected header is not base64url JSON")
	}
	switch typ, ok := h.Typ.(string); {
	case h.Typ == nil:
		// Absent: accepted for interoperability (RFC 8417 §2.3 only
		// recommends it).
	case !ok:
		return nil, refuse(ErrInvalidRequest, `typ header must be a string`)
	case !strings.EqualFold(typ, "secevent+jwt") && !strings.EqualFold(typ, ContentType):
		return nil, refuse(ErrInvalidRequest, `typ header must be "secevent+jwt", got %q`, clip(typ))
	}
	if !slices.Contains(asymmetric, jose.SignatureAlgorithm(h.Alg)) {
		return nil, refuse(ErrInvalidKey, "signature algorithm %q is not accepted: only asymmetric signatures", clip(h.Alg))
	}
	jws, err := jose.ParseSignedCompact(compact, asymmetric)
	if err != nil {
		return nil, refuse(ErrInvalidRequest, "not a compact JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, refuse(ErrInvalidRequest, "want exactly one signature")
	}

	// The issuer picks the keys, so it is read before the signature is
	// checked; nothing else of the payload is used until then.
	var unverified struct {
		Iss any `json:"iss"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return nil, refuse(ErrInvalidRequest, "payload is not a JSON object")
	}
	issName, ok := unverified.Iss.(string)
	if !ok || issName == "" {
		return nil, refuse(ErrInvalidRequest, "iss claim missing or not a string")
	}
	iss := r.issuers[issName]
	if iss == nil {
		return nil, refuse(ErrInvalidIssuer, "issuer %q is not configured", clip(issName))
	}
	if !slices.Contains(iss.algs, jose.SignatureAlgorithm(h.Alg)) {
		return nil, refuse(ErrInvalidKey, "signature algorithm %s is not accepted from this issuer (want %s)", h.Alg, algNames(iss.algs))
	}
	keys, err := iss.keys.lookup(ctx, h.Kid, h.Alg, now)
	if err != nil {
		return nil, err
	}
	var payload []byte
	for _, k := range keys {
		if p, err := jws.Verify(k.Key); err == nil {
			payload = p
			break
		}
	}
	if payload == nil {
		return nil, refuse(ErrAuthenticationFailed, "signature does not verify")
	}
	return checkClaims(iss, payload, now)
}

// checkClaims checks the claims of a verified payload.
func checkClaims(iss *issuer, payload []byte, now time.Time) (*verifiedSET, error) {
	var c struct {
		Aud    any                        `json:"aud"`
		Iat    any                        `json:"iat"`
		Exp    any                        `json:"exp"`
		Jti    any                        `json:"jti"`
		Events map[string]json.RawMessage `json:"events"`
		SubID  json.RawMessage            `json:"sub_id"`
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		return nil, refuse(ErrInvalidRequest, "claims do not decode: %v", err)
	}
	if !hasAudience(c.Aud, iss.audience) {
		return nil, refuse(ErrInvalidAudience, "aud does not include %q", iss.audience)
	}
	if c.Iat == nil {
		return nil, refuse(ErrInvalidRequest, "iat claim is required")
	}
	iat, ok := numericDate(c.Iat)
	if !ok {
		return nil, refuse(ErrInvalidRequest, "iat must be a NumericDate (seconds since the epoch)")
	}
	switch {
	case now.Sub(iat) > iss.maxAge:
		return nil, refuse(ErrInvalidRequest, "iat %s is older than %s", iat.Format(time.RFC3339), iss.maxAge)
	case iat.Sub(now) > FutureSkew:
		return nil, refuse(ErrInvalidRequest, "iat %s is in the future", iat.Format(time.RFC3339))
	}
	if c.Exp != nil {
		exp, ok := numericDate(c.Exp)
		if !ok {
			return nil, refuse(ErrInvalidRequest, "exp must be a NumericDate (seconds since the epoch)")
		}
		if now.Sub(exp) > FutureSkew {
			return nil, refuse(ErrInvalidRequest, "expired at %s", exp.Format(time.RFC3339))
		}
	}
	jti, ok := c.Jti.(string)
	switch {
	case c.Jti == nil || (ok && jti == ""):
		return nil, refuse(ErrInvalidRequest, "jti claim is required")
	case !ok:
		return nil, refuse(ErrInvalidRequest, "jti must be a string")
	case len(jti) > maxJTI:
		return nil, refuse(ErrInvalidRequest, "jti longer than %d bytes", maxJTI)
	}
	if len(c.Events) == 0 {
		return nil, refuse(ErrInvalidRequest, "events claim is required: a JSON object of at least one event")
	}
	return &verifiedSET{iss: iss, jti: jti, iat: iat, events: c.Events, subID: c.SubID}, nil
}

// hasAudience reports whether aud (a string or an array of strings) holds
// want.
func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// numericDate reads a JSON number of seconds since the epoch (RFC 7519
// §2), fractions allowed.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > 1<<33 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

func algNames(algs []jose.SignatureAlgorithm) string {
	s := make([]string, len(algs))
	for i, a := range algs {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}
