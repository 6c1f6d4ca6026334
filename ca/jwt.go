package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-dev/gatehouse/access"
)

// JWTIssueSkew is how far Validity.NotBefore is backdated from the issue
// time (access.CredentialTTL backdates it a minute); IssueAppJWT puts
// iat = NotBefore + JWTIssueSkew, i.e. the moment the token was issued.
const JWTIssueSkew = time.Minute

// JWTClaims is what an app JWT says: iss (the cluster), sub (the user),
// aud (the app), the granted roles and the user's traits. ID becomes jti
// (a random 128-bit hex id when empty), to be audited with the issuance.
type JWTClaims struct {
	Issuer   string
	Subject  string
	Audience string
	Roles    []string
	Traits   map[string][]string
	ID       string
}

// appJWTClaims is the JSON payload: the registered claims plus roles and
// traits.
type appJWTClaims struct {
	jwt.RegisteredClaims
	Roles  []string            `json:"roles"`
	Traits map[string][]string `json:"traits,omitempty"`
}

// IssueAppJWT signs an ES256 JWT for an app with the app CA's P-256 key:
// header {alg: ES256, typ: JWT, kid}, claims iss, sub, aud, roles, traits,
// nbf = v.NotBefore, iat = v.NotBefore + JWTIssueSkew (capped at exp),
// exp = v.NotAfter and jti. The signer may be any crypto.Signer (a KMS or
// HSM key included): the token is assembled here and only the SHA-256
// digest is signed, its ASN.1 signature converted to JWS's fixed r||s.
func IssueAppJWT(signer crypto.Signer, kid string, c JWTClaims, v Validity) (string, error) {
	if signer == nil {
		return "", fmt.Errorf("%w: no app CA signer", access.ErrInvalid)
	}
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return "", fmt.Errorf("%w: ES256 needs an ECDSA P-256 key, not %T", access.ErrInvalid, signer.Public())
	}
	switch {
	case kid == "":
		return "", fmt.Errorf("%w: JWT key id is empty", access.ErrInvalid)
	case c.Issuer == "" || c.Subject == "" || c.Audience == "":
		return "", fmt.Errorf("%w: JWT needs iss, sub and aud (got %q, %q, %q)", access.ErrInvalid, c.Issuer, c.Subject, c.Audience)
	case v.NotBefore.IsZero() || v.NotAfter.IsZero() || !v.NotAfter.After(v.NotBefore):
		return "", fmt.Errorf("%w: validity %s..%s is empty", access.ErrInvalid, v.NotBefore.Format(time.RFC3339), v.NotAfter.Format(time.RFC3339))
	}
	id := c.ID
	if id == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("jti: %w", err)
		}
		id = hex.EncodeToString(b[:])
	}
	iat := v.NotBefore.Add(JWTIssueSkew)
	if iat.After(v.NotAfter) {
		iat = v.NotAfter
	}
	roles := c.Roles
	if roles == nil {
		roles = []string{}
	}
	claims := appJWTClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   c.Subject,
			Audience:  jwt.ClaimStrings{c.Audience},
			ExpiresAt: jwt.NewNumericDate(v.NotAfter),
			NotBefore: jwt.NewNumericDate(v.NotBefore),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        id,
		},
		Roles:  roles,
		Traits: c.Traits,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	signing, err := tok.SigningString()
	if err != nil {
		return "", fmt.Errorf("encode JWT: %w", err)
	}
	digest := sha256.Sum256([]byte(signing))
	der, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil {
		return "", fmt.Errorf("sign JWT: signer returned a malformed ECDSA signature")
	}
	raw := make([]byte, 64)
	if sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return "", fmt.Errorf("sign JWT: signer returned an out-of-range ECDSA signature")
	}
	sig.R.FillBytes(raw[:32])
	sig.S.FillBytes(raw[32:])
	var b strings.Builder
	b.Grow(len(signing) + 1 + base64.RawURLEncoding.EncodedLen(len(raw)))
	b.WriteString(signing)
	b.WriteByte('.')
	b.WriteString(base64.RawURLEncoding.EncodeToString(raw))
	return b.String(), nil
}

// JWK is one RFC 7517 public key of a JWKS (EC P-256, signature use).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS returns the JSON Web Key Set served at /.well-known/jwks.json:
// {"keys":[{"kty":"EC","crv":"P-256","x":...,"y":...,"kid":...,"use":"sig",
// "alg":"ES256"}]}, ordered by kid. During a rotation it holds the old and
// the new key, so verifiers pick by kid.
func JWKS(keys map[string]*ecdsa.PublicKey) ([]byte, error) {
	kids := make([]string, 0, len(keys))
	for kid := range keys {
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	set := struct {
		Keys []JWK `json:"keys"`
	}{Keys: make([]JWK, 0, len(keys))}
	for _, kid := range kids {
		k := keys[kid]
		if kid == "" {
			return nil, fmt.Errorf("%w: JWKS key with an empty kid", access.ErrInvalid)
		}
		if k == nil || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: JWKS key %q is not ECDSA P-256", access.ErrInvalid, kid)
		}
		pt, err := k.Bytes() // 0x04 || X (32 bytes) || Y (32 bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: JWKS key %q: %v", access.ErrInvalid, kid, err)
		}
		set.Keys = append(set.Keys, JWK{
			Kty: "EC",
			Crv: "P-256",
			X:   base64.RawURLEncoding.EncodeToString(pt[1:33]),
			Y:   base64.RawURLEncoding.EncodeToString(pt[33:65]),
			Kid: kid,
			Use: "sig",
			Alg: "ES256",
		})
	}
	return json.Marshal(set)
}
