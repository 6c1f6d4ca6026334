package service_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/pki"
	"github.com/gatehouse-dev/gatehouse/service"
)

// device is a CLI about to log in: a fresh key and its CSR.
type device struct {
	csrPEM  string
	keyHash string
}

func newDevice(t *testing.T, user string) device {
	t.Helper()
	_, csrPEM, err := pki.NewKeyAndCSR(user)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	// Computed here independently of the service: SHA-256 over the PKIX
	// DER, unpadded standard base64, as ssh-keygen prints.
	sum := sha256.Sum256(csr.RawSubjectPublicKeyInfo)
	return device{csrPEM: string(csrPEM), keyHash: "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])}
}

// deviceStarts counts each fixture's starts: each comes from an address of
// its own (192.0.2.7, .8, ...), so the per-address cap
// (TestDeviceLoginsPerAddress) holds no other test back.
var deviceStarts sync.Map // *fixture → *atomic.Int32

func (f *fixture) startDeviceLogin(t *testing.T, user string, dev device) access.DeviceLogin {
	t.Helper()
	n, _ := deviceStarts.LoadOrStore(f, new(atomic.Int32))
	addr := fmt.Sprintf("192.0.2.%d", 6+n.(*atomic.Int32).Add(1))
	d, err := f.svc.StartDeviceLogin(context.Background(), user, dev.csrPEM, addr)
	if err != nil {
		t.Fatalf("start device login for %s: %v", user, err)
	}
	return d
}

func (f *fixture) auditTypes(t *testing.T, typ string) []access.AuditEvent {
	t.Helper()
	evs, err := f.st.ListAudit(context.Background(), access.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

var codeFormat = regexp.MustCompile(`^[ABCDEFGHJKMNPQRSTUVWXYZ2-9]{4}-[ABCDEFGHJKMNPQRSTUVWXYZ2-9]{4}$`)

// TestDeviceLoginConfirmedInChatCertifiesTheDeviceKey is the whole flow:
// the CLI starts, alice sees the prompt in chat and confirms, the CLI
// redeems and gets a session certificate for its own key, once.
func TestDeviceLoginConfirmedInChatCertifiesTheDeviceKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice := f.user(t, "alice", "requester")
	dev := newDevice(t, "alice")

	d := f.startDeviceLogin(t, "alice", dev)
	if !codeFormat.MatchString(d.Code) {
		t.Fatalf("code %q is not XXXX-XXXX of the unambiguous alphabet", d.Code)
	}
	if d.KeyHash != dev.keyHash || d.User != "alice" || d.Address != "192.0.2.7" || d.Expires.Sub(d.Created) != access.DeviceLoginTTL {
		t.Fatalf("started login = %+v, want key %s", d, dev.keyHash)
	}

	prompt, err := f.svc.DeviceLoginPrompt(ctx, alice, d.Code)
	if err != nil {
		t.Fatal(err)
	}
	if prompt.User != "alice" || prompt.Address != "192.0.2.7" || prompt.KeyHash != dev.keyHash {
		t.Fatalf("prompt = %+v", prompt)
	}
	confirmed, err := f.svc.ConfirmDeviceLogin(ctx, alice, d.Code, "slack:U0ALICE")
	if err != nil {
		t.Fatal(err)
	}
	if confirmed.Confirmed == nil || confirmed.ConfirmedBy != "slack:U0ALICE" {
		t.Fatalf("confirmed = %+v", confirmed)
	}
	// A double click confirms nothing twice and is no error.
	if _, err := f.svc.ConfirmDeviceLogin(ctx, alice, d.Code, "slack:U0ALICE"); err != nil {
		t.Fatalf("second click: %v", err)
	}
	// The prompt of a confirmed code is not shown again.
	if _, err := f.svc.DeviceLoginPrompt(ctx, alice, d.Code); !errors.Is(err, access.ErrConflict) {
		t.Fatalf("prompt after confirm: %v, want ErrConflict", err)
	}

	res, err := f.svc.RedeemDeviceLogin(ctx, d.Code, dev.csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertificate([]byte(res.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	if got := "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]); got != dev.keyHash {
		t.Fatalf("certificate key %s, want the device's %s", got, dev.keyHash)
	}
	if cert.Subject.CommonName != "alice" || res.User != "alice" || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("certificate for %q (%v), result user %q", cert.Subject.CommonName, cert.ExtKeyUsage, res.User)
	}
	if !res.Expires.Equal(f.clock.Now().Add(service.DefaultSessionTTL)) {
		t.Fatalf("expires %s, want the session TTL from now", res.Expires)
	}
	if _, err := f.svc.RedeemDeviceLogin(ctx, d.Code, dev.csrPEM); !errors.Is(err, access.ErrExpired) {
		t.Fatalf("second redeem: %v, want ErrExpired (used)", err)
	}

	for _, want := range []struct{ typ, actor string }{
		{"login.device.start", "alice"}, {"login.device.confirm", "alice"}, {"login.device.redeem", "alice"},
	} {
		evs := f.auditTypes(t, want.typ)
		if len(evs) != 1 || evs[0].Actor != want.actor || evs[0].Outcome != service.OutcomeSuccess || evs[0].Fields["key_hash"] != dev.keyHash {
			t.Fatalf("audit %s = %+v, want one success by %s for the key", want.typ, evs, want.actor)
		}
	}
	if by := f.auditTypes(t, "login.device.redeem")[0].Fields["confirmed_by"]; by != "slack:U0ALICE" {
		t.Fatalf("redeem audit confirmed_by = %v", by)
	}
}

// TestDeviceLoginCodeOfAnotherUserRevealsNothing: mallory got alice's code
// (phishing). Her prompt and confirm get the very answer an unknown code
// gets, are audited, and leave alice's login as it was.
func TestDeviceLoginCodeOfAnotherUserRevealsNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.user(t, "alice", "requester")
	mallory := f.user(t, "mallory", "requester")
	d := f.startDeviceLogin(t, "alice", newDevice(t, "alice"))
	unknown := "2345-6789"
	if unknown == d.Code {
		unknown = "9876-5432"
	}

	_, unknownErr := f.svc.DeviceLoginPrompt(ctx, mallory, unknown)
	if !errors.Is(unknownErr, access.ErrNotFound) {
		t.Fatalf("unknown code: %v, want ErrNotFound", unknownErr)
	}
	calls := map[string]func() error{
		"prompt": func() error { _, err := f.svc.DeviceLoginPrompt(ctx, mallory, d.Code); return err },
		"confirm": func() error {
			_, err := f.svc.ConfirmDeviceLogin(ctx, mallory, d.Code, "discord:666")
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if err == nil || err.Error() != unknownErr.Error() || access.CodeOf(err) != access.CodeOf(unknownErr) {
			t.Fatalf("%s of alice's code by mallory: %v; want exactly the unknown-code answer %q", name, err, unknownErr)
		}
	}

	stored, err := f.st.GetDeviceLogin(ctx, d.Code)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Confirmed != nil || stored.ConfirmedBy != "" {
		t.Fatalf("alice's login changed: %+v", stored)
	}
	var refusedForAlice int
	for _, ev := range f.auditTypes(t, "login.device.refused") {
		if ev.Actor != "mallory" || ev.Outcome != service.OutcomeDenied {
			t.Fatalf("refusal audited as %+v", ev)
		}
		if ev.Fields["claimed_user"] == "alice" {
			refusedForAlice++
		}
	}
	if refusedForAlice != 2 {
		t.Fatalf("%d refusals name alice as the claimed user, want 2 (prompt and confirm)", refusedForAlice)
	}
}

// TestStartDeviceLoginLimits: a start tells nothing about whether the user
// exists, refuses bad input, and bounds the pending codes per claimed user.
func TestStartDeviceLoginLimits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.user(t, "alice", "requester")
	dev := newDevice(t, "alice")

	ghost, err := f.svc.StartDeviceLogin(ctx, "ghost", dev.csrPEM, "192.0.2.8")
	if err != nil || !codeFormat.MatchString(ghost.Code) || ghost.KeyHash != dev.keyHash {
		t.Fatalf("start for an unknown user: %+v, %v; want a code like anyone's", ghost, err)
	}

	bad := []struct {
		name, user, csr string
	}{
		{"bad user name", "../etc", dev.csrPEM},
		{"no CSR", "alice", ""},
		{"garbage CSR", "alice", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"},
	}
	for _, tt := range bad {
		if _, err := f.svc.StartDeviceLogin(ctx, tt.user, tt.csr, "192.0.2.8"); !errors.Is(err, access.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tt.name, err)
		}
	}

	for range 4 { // ghost has one already
		f.startDeviceLogin(t, "ghost", dev)
	}
	_, err = f.svc.StartDeviceLogin(ctx, "ghost", dev.csrPEM, "192.0.2.8")
	if !errors.Is(err, access.ErrConflict) || !strings.Contains(err.Error(), "5 login codes waiting") {
		t.Fatalf("sixth pending code: %v, want ErrConflict naming the limit", err)
	}
	f.startDeviceLogin(t, "alice", dev) // others are not held back
	f.clock.Add(access.DeviceLoginTTL)
	f.startDeviceLogin(t, "ghost", dev) // expired codes no longer count
}

// TestRedeemDeviceLoginRefusals: every way a redeem must fail, with the
// error class the HTTP layer maps to a status.
func TestRedeemDeviceLoginRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice := f.user(t, "alice", "requester")
	f.user(t, "bob", "requester")
	dev := newDevice(t, "alice")
	confirmedCode := func(t *testing.T, user string) string {
		c, err := f.svc.Caller(ctx, user, access.SourceSlack)
		if err != nil {
			t.Fatal(err)
		}
		d := f.startDeviceLogin(t, user, dev)
		if _, err := f.svc.ConfirmDeviceLogin(ctx, c, d.Code, "slack:U0"+strings.ToUpper(user)); err != nil {
			t.Fatal(err)
		}
		return d.Code
	}

	tests := []struct {
		name    string
		prepare func(t *testing.T) (code, csr string)
		want    error
	}{
		{"before the confirmation", func(t *testing.T) (string, string) {
			return f.startDeviceLogin(t, "alice", dev).Code, dev.csrPEM
		}, service.ErrDeviceLoginPending},
		{"a CSR of another key", func(t *testing.T) (string, string) {
			return confirmedCode(t, "alice"), newDevice(t, "alice").csrPEM
		}, access.ErrForbidden},
		{"an unknown code", func(t *testing.T) (string, string) { return "2345-6789", dev.csrPEM }, access.ErrExpired},
		{"a malformed code", func(t *testing.T) (string, string) { return "0000-OOOO", dev.csrPEM }, access.ErrInvalid},
		{"a broken CSR", func(t *testing.T) (string, string) { return confirmedCode(t, "alice"), "not a CSR" }, access.ErrInvalid},
		{"the user was locked since", func(t *testing.T) (string, string) {
			code := confirmedCode(t, "bob")
			if err := f.svc.Lock(ctx, f.admin, "bob", "laptop stolen"); err != nil {
				t.Fatal(err)
			}
			return code, dev.csrPEM
		}, access.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, csr := tt.prepare(t)
			res, err := f.svc.RedeemDeviceLogin(ctx, code, csr)
			if !errors.Is(err, tt.want) || res.CertPEM != "" {
				t.Fatalf("redeem: %v (certificate %t), want %v", err, res.CertPEM != "", tt.want)
			}
		})
	}
	failed := map[string]string{} // actor: outcome, message
	for _, ev := range f.auditTypes(t, "login.device.redeem") {
		failed[ev.Actor] = ev.Outcome + ": " + ev.Message
	}
	if len(failed) != 2 || failed["alice"] != "denied: key mismatch" || !strings.Contains(failed["bob"], "failure: unauthorized: user \"bob\" is locked") {
		t.Fatalf("failed redeems audited as %v, want alice's key mismatch and bob's lock", failed)
	}

	// Five minutes on, a confirmed code and an unconfirmed one are both
	// expired, in chat and for the CLI.
	confirmed := confirmedCode(t, "alice")
	pending := f.startDeviceLogin(t, "alice", dev).Code
	f.clock.Add(access.DeviceLoginTTL)
	for _, code := range []string{confirmed, pending} {
		if _, err := f.svc.RedeemDeviceLogin(ctx, code, dev.csrPEM); !errors.Is(err, access.ErrExpired) {
			t.Fatalf("redeem after expiry: %v, want ErrExpired", err)
		}
	}
	if _, err := f.svc.ConfirmDeviceLogin(ctx, alice, pending, "slack:U0ALICE"); !errors.Is(err, access.ErrExpired) {
		t.Fatalf("confirm after expiry: %v, want ErrExpired", err)
	}
}

// TestConcurrentRedeemsIssueOneCertificate races redeems of one confirmed
// code against real etcd: exactly one gets a certificate.
func TestConcurrentRedeemsIssueOneCertificate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice := f.user(t, "alice", "requester")
	dev := newDevice(t, "alice")
	d := f.startDeviceLogin(t, "alice", dev)
	if _, err := f.svc.ConfirmDeviceLogin(ctx, alice, d.Code, "mattermost:abc"); err != nil {
		t.Fatal(err)
	}

	const racers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var certs, used int
	start := make(chan struct{})
	for range racers {
		wg.Go(func() {
			<-start
			res, err := f.svc.RedeemDeviceLogin(ctx, d.Code, dev.csrPEM)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && res.CertPEM != "":
				certs++
			case errors.Is(err, access.ErrExpired):
				used++
			default:
				t.Errorf("redeem: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if certs != 1 || used != racers-1 {
		t.Fatalf("%d certificates and %d refusals, want 1 and %d", certs, used, racers-1)
	}
	if evs := f.auditTypes(t, "login.device.redeem"); len(evs) != 1 {
		t.Fatalf("%d redeem audit events, want 1", len(evs))
	}
}

// TestLoginCodeIsReadAsPeopleTypeIt: case, the dash and spaces do not
// matter; anything else is no code at all.
func TestLoginCodeIsReadAsPeopleTypeIt(t *testing.T) {
	f := newFixture(t)
	alice := f.user(t, "alice", "requester")
	d := f.startDeviceLogin(t, "alice", newDevice(t, "alice"))
	plain := strings.ReplaceAll(d.Code, "-", "")

	tests := []struct {
		typed string
		found bool
	}{
		{d.Code, true},
		{plain, true},
		{strings.ToLower(d.Code), true},
		{"  " + plain[:4] + " " + plain[4:] + "\n", true},
		{plain[:2] + "-" + plain[2:6] + "-" + plain[6:], true},
		{plain[:7], false},
		{plain + "2", false},
		{plain[:7] + "O", false}, // look-alikes are not in the alphabet
		{plain[:7] + "!", false},
		{"", false},
	}
	for _, tt := range tests {
		got, err := f.svc.DeviceLoginPrompt(context.Background(), alice, tt.typed)
		if tt.found && (err != nil || got.Code != d.Code) {
			t.Errorf("%q: %v, want alice's login %s", tt.typed, err, d.Code)
		}
		if !tt.found && !errors.Is(err, access.ErrNotFound) {
			t.Errorf("%q: %v, want no such code", tt.typed, err)
		}
	}
}
