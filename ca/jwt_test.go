package ca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/ca"
)

// jwtKeyfunc resolves a token's kid in a JWKS document the way an app
// would after fetching /.well-known/jwks.json: decoded from the JSON, not
// taken from the issuer's memory.
func jwtKeyfunc(t *testing.T, jwks []byte) jwt.Keyfunc {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		if k["kty"] != "EC" || k["crv"] != "P-256" || k["use"] != "sig" || k["alg"] != "ES256" {
			t.Fatalf("JWK %v", k)
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k["x"])
		y, err2 := base64.RawURLEncoding.DecodeString(k["y"])
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			t.Fatalf("JWK coordinates %q %q", k["x"], k["y"])
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatalf("JWK %s: %v", k["kid"], err)
		}
		keys[k["kid"]] = pub
	}
	return func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
}

type jwtAppClaims struct {
	jwt.RegisteredClaims
	Roles  []string            `json:"roles"`
	Traits map[string][]string `json:"traits"`
}

func jwtKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	return x5Key(t, "p256").(*ecdsa.PrivateKey)
}

func TestJWTIssueAndVerify(t *testing.T) {
	oldKey, newKey := jwtKey(t), jwtKey(t)
	jwks, err := ca.JWKS(map[string]*ecdsa.PublicKey{"app-2": &newKey.PublicKey, "app-1": &oldKey.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(jwks), `{"keys":[{"kty":"EC","crv":"P-256","x":"`) || strings.Index(string(jwks), `"kid":"app-1"`) > strings.Index(string(jwks), `"kid":"app-2"`) {
		t.Errorf("JWKS %s", jwks)
	}
	keyfunc := jwtKeyfunc(t, jwks)

	v := x5Window(time.Hour)
	in := ca.JWTClaims{
		Issuer:   "gatehouse.example.com",
		Subject:  "alice@example.com",
		Audience: "grafana",
		Roles:    []string{"dev", "oncall"},
		Traits:   map[string][]string{"logins": {"alice", "deploy"}},
		ID:       "req-123",
	}
	for kid, key := range map[string]*ecdsa.PrivateKey{"app-1": oldKey, "app-2": newKey} {
		tok, err := ca.IssueAppJWT(key, kid, in, v)
		if err != nil {
			t.Fatal(err)
		}
		var got jwtAppClaims
		parsed, err := jwt.ParseWithClaims(tok, &got, keyfunc,
			jwt.WithValidMethods([]string{"ES256"}),
			jwt.WithAudience("grafana"),
			jwt.WithIssuer("gatehouse.example.com"),
			jwt.WithIssuedAt(),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(5*time.Second))
		if err != nil {
			t.Fatalf("%s: %v", kid, err)
		}
		if parsed.Header["kid"] != kid || parsed.Header["alg"] != "ES256" || parsed.Header["typ"] != "JWT" {
			t.Errorf("header %v", parsed.Header)
		}
		if got.Subject != "alice@example.com" || got.ID != "req-123" || strings.Join(got.Roles, ",") != "dev,oncall" || strings.Join(got.Traits["logins"], ",") != "alice,deploy" {
			t.Errorf("claims %+v", got)
		}
		if !got.ExpiresAt.Equal(v.NotAfter.Truncate(time.Second)) || !got.NotBefore.Equal(v.NotBefore.Truncate(time.Second)) ||
			!got.IssuedAt.Equal(v.NotBefore.Add(ca.JWTIssueSkew).Truncate(time.Second)) {
			t.Errorf("times iat %v nbf %v exp %v, validity %v..%v", got.IssuedAt, got.NotBefore, got.ExpiresAt, v.NotBefore, v.NotAfter)
		}
		// The signature is JWS's fixed 64-byte r||s, not ASN.1.
		sig, err := base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
		if err != nil || len(sig) != 64 {
			t.Errorf("signature of %d bytes: %v", len(sig), err)
		}
	}

	tok, err := ca.IssueAppJWT(newKey, "app-2", in, v)
	if err != nil {
		t.Fatal(err)
	}
	// Wrong audience, wrong issuer, algorithm not pinned to ES256.
	for _, opt := range []jwt.ParserOption{jwt.WithAudience("kibana"), jwt.WithIssuer("evil.example.com"), jwt.WithValidMethods([]string{"RS256"})} {
		if _, err := jwt.Parse(tok, keyfunc, jwt.WithValidMethods([]string{"ES256"}), opt); err == nil {
			t.Error("token accepted with a mismatched expectation")
		}
	}
	// A key not in the JWKS.
	tok2, _ := ca.IssueAppJWT(jwtKey(t), "app-2", in, v)
	if _, err := jwt.Parse(tok2, keyfunc, jwt.WithValidMethods([]string{"ES256"})); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Errorf("token of a foreign key: %v", err)
	}
	// Tampered payload.
	parts := strings.Split(tok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"gatehouse.example.com","sub":"root","aud":"grafana","exp":9999999999}`))
	if _, err := jwt.Parse(strings.Join(parts, "."), keyfunc, jwt.WithValidMethods([]string{"ES256"})); err == nil {
		t.Error("tampered token accepted")
	}
}

func TestJWTExpired(t *testing.T) {
	k := jwtKey(t)
	jwks, err := ca.JWKS(map[string]*ecdsa.PublicKey{"app-1": &k.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	keyfunc := jwtKeyfunc(t, jwks)
	c := ca.JWTClaims{Issuer: "gh", Subject: "alice", Audience: "grafana"}

	// Issued with two seconds of life: valid now, refused after exp.
	now := time.Now()
	tok, err := ca.IssueAppJWT(k, "app-1", c, ca.Validity{NotBefore: now.Add(-time.Minute), NotAfter: now.Add(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience("grafana"), jwt.WithIssuer("gh")}
	if _, err := jwt.Parse(tok, keyfunc, opts...); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	time.Sleep(time.Until(now.Add(2 * time.Second).Truncate(time.Second).Add(1100 * time.Millisecond)))
	if _, err := jwt.Parse(tok, keyfunc, opts...); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("expired token: %v, want ErrTokenExpired", err)
	}

	// Not yet valid.
	tok, _ = ca.IssueAppJWT(k, "app-1", c, ca.Validity{NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)})
	if _, err := jwt.Parse(tok, keyfunc, opts...); !errors.Is(err, jwt.ErrTokenNotValidYet) {
		t.Fatalf("future token: %v, want ErrTokenNotValidYet", err)
	}
}

func TestJWTRefuses(t *testing.T) {
	k := jwtKey(t)
	v := x5Window(time.Hour)
	c := ca.JWTClaims{Issuer: "gh", Subject: "alice", Audience: "grafana"}
	for _, tt := range []struct {
		name string
		err  func() error
		want string
	}{
		{"P-384 key", func() error {
			_, err := ca.IssueAppJWT(x5Key(t, "p384").(*ecdsa.PrivateKey), "k", c, v)
			return err
		}, "P-256"},
		{"Ed25519 key", func() error { _, err := ca.IssueAppJWT(x5Key(t, "ed25519"), "k", c, v); return err }, "P-256"},
		{"no kid", func() error { _, err := ca.IssueAppJWT(k, "", c, v); return err }, "key id"},
		{"no aud", func() error {
			_, err := ca.IssueAppJWT(k, "k", ca.JWTClaims{Issuer: "gh", Subject: "alice"}, v)
			return err
		}, "aud"},
		{"empty validity", func() error { _, err := ca.IssueAppJWT(k, "k", c, ca.Validity{}); return err }, "empty"},
		{"JWKS P-384", func() error {
			_, err := ca.JWKS(map[string]*ecdsa.PublicKey{"k": &x5Key(t, "p384").(*ecdsa.PrivateKey).PublicKey})
			return err
		}, "not ECDSA P-256"},
		{"JWKS empty kid", func() error { _, err := ca.JWKS(map[string]*ecdsa.PublicKey{"": &k.PublicKey}); return err }, "empty kid"},
		{"JWKS invalid point", func() error {
			_, err := ca.JWKS(map[string]*ecdsa.PublicKey{"k": {Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}})
			return err
		}, "JWKS key"},
	} {
		t.Run(tt.name, func(t *testing.T) { x5WantErr(t, tt.err(), access.ErrInvalid, tt.want) })
	}
	// An empty set is valid JSON with an empty list.
	if b, err := ca.JWKS(nil); err != nil || string(b) != `{"keys":[]}` {
		t.Errorf("empty JWKS %s %v", b, err)
	}
	// A random jti when none is given.
	t1, _ := ca.IssueAppJWT(k, "k", c, v)
	t2, _ := ca.IssueAppJWT(k, "k", c, v)
	var c1, c2 jwt.RegisteredClaims
	_, _, _ = jwt.NewParser().ParseUnverified(t1, &c1)
	_, _, _ = jwt.NewParser().ParseUnverified(t2, &c2)
	if len(c1.ID) != 32 || c1.ID == c2.ID {
		t.Errorf("jti %q %q", c1.ID, c2.ID)
	}
}

// BenchmarkIssueAppJWT: one app JWT (claims encoding plus a P-256 sign).
func BenchmarkIssueAppJWT(b *testing.B) {
	k := jwtKey(b)
	v := x5Window(time.Hour)
	c := ca.JWTClaims{Issuer: "gatehouse.example.com", Subject: "alice@example.com", Audience: "grafana",
		Roles: []string{"dev"}, Traits: map[string][]string{"logins": {"alice"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.IssueAppJWT(k, "app-1", c, v); err != nil {
			b.Fatal(err)
		}
	}
}
