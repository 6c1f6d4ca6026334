package ca

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/pki"
)

func TestNewClusterState(t *testing.T) {
	kek := kekForTest(t)
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		kek        KEK
		wantSealed bool
	}{
		{"with a key-encryption key the key is sealed", kek, true},
		{"without one it stays in the clear", KEK{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := NewClusterState("test.local", now, tt.kek)
			keysNoErr(t, err)
			if ClusterKeySealed(cs) != tt.wantSealed || (cs.CAKeyPEM == "") != tt.wantSealed {
				t.Fatalf("sealed %v, clear key %d bytes; want sealed %v", ClusterKeySealed(cs), len(cs.CAKeyPEM), tt.wantSealed)
			}
			stored, err := json.Marshal(cs)
			keysNoErr(t, err)
			if got := bytes.Contains(stored, []byte("PRIVATE KEY")); got == tt.wantSealed {
				t.Fatalf("stored state holds a clear key: %v, want %v", got, !tt.wantSealed)
			}
			ca, err := LoadClusterCA(cs, tt.kek)
			keysNoErr(t, err)
			if ca.Cert.Subject.CommonName != "Gatehouse CA test.local" || cs.Name != "test.local" || !cs.Created.Equal(now) {
				t.Fatalf("CA %q, state %+v", ca.Cert.Subject.CommonName, cs)
			}
		})
	}
}

// TestSealClusterKey: sealing keeps the key byte for byte (so keys derived
// from it do not change), is idempotent, and only the same KEK opens it.
func TestSealClusterKey(t *testing.T) {
	kek, other := kekForTest(t), kekForTest(t)
	clearState, err := NewClusterState("test.local", time.Now(), KEK{})
	keysNoErr(t, err)
	sealed, err := SealClusterKey(clearState, kek)
	keysNoErr(t, err)
	if !ClusterKeySealed(sealed) || sealed.CAKeyPEM != "" || sealed.CACertPEM != clearState.CACertPEM || sealed.Name != clearState.Name {
		t.Fatalf("sealed state = %+v", sealed)
	}
	opened, err := OpenClusterKey(sealed, kek)
	keysNoErr(t, err)
	if string(opened) != clearState.CAKeyPEM {
		t.Fatal("the opened key differs from the key that was sealed")
	}
	again, err := SealClusterKey(sealed, other)
	keysNoErr(t, err)
	if again != sealed {
		t.Fatal("sealing a sealed state changed it")
	}
	before, err := LoadClusterCA(clearState, KEK{})
	keysNoErr(t, err)
	after, err := LoadClusterCA(sealed, kek)
	keysNoErr(t, err)
	if before.Pin() != after.Pin() {
		t.Fatalf("pin %s became %s", before.Pin(), after.Pin())
	}

	// The CA-key envelope under the same KEK is not a cluster key.
	credKey, err := kek.Seal([]byte(clearState.CAKeyPEM), keyAAD("/gatehouse/ca/ssh", access.CATypeSSH, 1))
	keysNoErr(t, err)
	moved := sealed
	moved.CAKeySealed = base64.StdEncoding.EncodeToString(credKey)

	tampered := sealed
	raw, _ := base64.StdEncoding.DecodeString(sealed.CAKeySealed)
	raw[len(raw)-1] ^= 1
	tampered.CAKeySealed = base64.StdEncoding.EncodeToString(raw)

	notBase64 := sealed
	notBase64.CAKeySealed = "not base64!"

	noKey := clearState
	noKey.CAKeyPEM = ""

	tests := []struct {
		name    string
		cs      access.ClusterState
		kek     KEK
		wantIs  error
		wantMsg string
	}{
		{"another KEK", sealed, other, ErrKEKMismatch, "key-encryption key does not open"},
		{"no KEK for a sealed key", sealed, KEK{}, ErrClusterKeySealed, "ca.kek_file"},
		{"a credential CA key in its place", moved, kek, ErrKEKMismatch, ""},
		{"altered bytes", tampered, kek, ErrKEKMismatch, ""},
		{"not base64", notBase64, kek, nil, "not base64"},
		{"no key at all", noKey, kek, nil, "holds no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadClusterCA(tt.cs, tt.kek)
			if err == nil || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("LoadClusterCA = %v, want %v %q", err, tt.wantIs, tt.wantMsg)
			}
		})
	}
}

// A key that is not the certificate's is refused, not sealed.
func TestSealClusterKeyRefusesAnotherCertificatesKey(t *testing.T) {
	a, err := NewClusterState("a", time.Now(), KEK{})
	keysNoErr(t, err)
	_, otherKey, err := pki.NewCA("b", time.Now())
	keysNoErr(t, err)
	a.CAKeyPEM = string(otherKey)
	if _, err := SealClusterKey(a, kekForTest(t)); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("SealClusterKey with another CA's key: %v", err)
	}
}

// BenchmarkLoadClusterCA is what every session certificate costs to reach
// the cluster CA: open the sealed key and parse it.
func BenchmarkLoadClusterCA(b *testing.B) {
	kek := kekForTest(b)
	cs, err := NewClusterState("test.local", time.Now(), kek)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := LoadClusterCA(cs, kek); err != nil {
			b.Fatal(err)
		}
	}
}
