package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
)

// CRLs of the per-resource X.509 CAs, one per key version.
//
// Windows matches a certificate to a CRL by issuer name and authority key
// identifier, and verifies the CRL's signature with the key that signed
// the certificate (RFC 5280 6.3.3 (b), (f)). Each key of a rotation has its
// own issuer name and key identifier (selfSignCA), so a CRL signed by the
// new key says nothing about certificates of the old one: their status is
// unknown, and the KDC refuses a smartcard logon whose revocation status it
// cannot determine (KDC_ERR_REVOCATION_STATUS_UNKNOWN, RFC 4556 3.2.3).
// Hence every certificate names the CRL of the key that signed it
// (IssueDesktop), and that CRL is signed by that key for as long as the key
// is in the set, i.e. until it retires, after its certificates expired.

// CRLLifetime is how far ahead a CRL's NextUpdate lies.
const CRLLifetime = 24 * time.Hour

// crlReuse is how long a signed CRL is served again before a fresh one is
// signed. The CRL listener is anonymous, and the signature (with the
// check crypto/x509 makes of it) is most of the cost of a fetch; a CRL
// served that old still has CRLLifetime-crlReuse to live, and replicas'
// CRL numbers stay within crlReuse of each other.
const crlReuse = time.Minute

// crlKey identifies the key a CRL is signed with. The public key is part
// of it so a CA that was wiped and made again is never served an old CRL.
type crlKey struct {
	path    string
	version int
	public  string
}

type signedCRL struct {
	der        []byte
	thisUpdate time.Time
}

// crlCache keeps the last CRL signed with each key; the zero value is
// ready. Safe for concurrent use.
type crlCache struct {
	mu   sync.Mutex
	crls map[crlKey]signedCRL
}

// get returns the CRL signed with k when it was signed less than crlReuse
// before now (and not after now: a clock set back signs again).
func (c *crlCache) get(k crlKey, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.crls[k]
	if !ok || now.Before(e.thisUpdate) || now.Sub(e.thisUpdate) >= crlReuse {
		return nil, false
	}
	return e.der, true
}

// put keeps crl for k and drops the CRLs of k's CA whose key has left
// set, so retired keys' CRLs do not pile up.
func (c *crlCache) put(k crlKey, crl signedCRL, set access.CAKeySet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crls == nil {
		c.crls = map[crlKey]signedCRL{}
	}
	for old := range c.crls {
		if old.path == k.path && keyIndex(set, func(s access.CAKey) bool { return s.Version == old.version && s.Public == old.public }) < 0 {
			delete(c.crls, old)
		}
	}
	c.crls[k] = crl
}

// CRL returns an empty X.509 CRL (DER) of a per-resource X.509 CA (db,
// kube, desktop) signed by its key of version, with that key's CA
// certificate as issuer (name and authority key identifier). Version 0 is
// the active key, and the CA is created when absent (callers check the
// resource exists first). Every key in the set has its CRL, published and
// retiring ones too: certificates of a retiring key need theirs until they
// expire, and a replica whose view still shows a just-switched key as
// published must serve the CRL its certificates name. A version not in the
// set (retired, or never made) is ErrNotFound.
//
// Nothing is revoked: Gatehouse credentials are short-lived and end with
// the grant; the CRL exists because Windows refuses smartcard logon when it
// cannot fetch one. Its number is the Unix time, so it grows across
// replicas without state. A CRL is signed again at most every crlReuse
// per key.
func (a *Authority) CRL(ctx context.Context, typ, resource string, version int) ([]byte, error) {
	if err := CheckCA(typ, resource); err != nil {
		return nil, err
	}
	if !caHasCert(typ) {
		return nil, fmt.Errorf("%w: the %s CA is not an X.509 CA and has no CRL", access.ErrInvalid, typ)
	}
	if version < 0 {
		return nil, fmt.Errorf("%w: CA key version %d (want 1 or more, or 0 for the active key)", access.ErrInvalid, version)
	}
	name := caName(typ, resource)
	var set access.CAKeySet
	var err error
	if version == 0 {
		set, err = a.keys.Ensure(ctx, typ, resource)
	} else {
		// A named version is served, never created.
		set, err = a.keys.st.GetCAKeys(ctx, typ, resource)
	}
	if err != nil {
		if version > 0 && errors.Is(err, access.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s has no key v%d", access.ErrNotFound, name, version)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	i := keyIndex(set, func(k access.CAKey) bool {
		if version == 0 {
			return k.State == access.CAKeyActive
		}
		return k.Version == version
	})
	switch {
	case i < 0 && version == 0:
		return nil, fmt.Errorf("%s has no active key: %w", name, access.ErrConflict)
	case i < 0:
		return nil, fmt.Errorf("%w: %s has no key v%d (retired, or never made)", access.ErrNotFound, name, version)
	}
	key := set.Keys[i]
	path := a.keys.st.CAKeyPath(typ, resource)
	ck := crlKey{path: path, version: key.Version, public: key.Public}
	now := a.keys.now().UTC()
	if der, ok := a.crls.get(ck, now); ok {
		return der, nil
	}
	signer, err := a.keys.open(path, typ, resource, key)
	if err != nil {
		return nil, err
	}
	caCert, err := KeyCertificate(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(now.Unix()),
		ThisUpdate: now,
		NextUpdate: now.Add(CRLLifetime),
	}, caCert, signer)
	if err != nil {
		return nil, fmt.Errorf("%s key v%d: sign CRL: %w", name, key.Version, err)
	}
	a.crls.put(ck, signedCRL{der: der, thisUpdate: now}, set)
	return der, nil
}
