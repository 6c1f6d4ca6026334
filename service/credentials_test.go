package service_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/ca"
	"github.com/gatehouse-dev/gatehouse/inventory"
	"github.com/gatehouse-dev/gatehouse/service"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// newIssuingFixture is newFixture with a certificate authority over the
// same etcd, so grants can be turned into credentials.
func newIssuingFixture(t *testing.T) *fixture {
	t.Helper()
	st := storetest.Embedded(t)
	kek, err := ca.NewKEK()
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now().UTC()}
	svc := service.New(service.Config{ClusterName: "test.local", PendingTTL: time.Hour}, st, inventory.New(),
		service.WithClock(clk.Now), service.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		service.WithIssuer(ca.NewAuthority(ca.NewManager(st, kek))))
	ctx := context.Background()
	if _, err := svc.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	admin, err := svc.Caller(ctx, service.AdminUser, "test")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, st: st, clock: clk, admin: admin}
}

func csrPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "postgres"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestDBUsersMatchPatterns: a role's db_users may hold the user's logins
// (a trait) and ^regex$ patterns. alice, granted such a role, gets
// certificates for her login and for any ro_ account, but not for admin
// nor for the ro_ account a deny names; the refusal names the patterns.
func TestDBUsersMatchPatterns(t *testing.T) {
	f := newIssuingFixture(t)
	ctx := context.Background()
	f.role(t, access.Role{Metadata: access.Metadata{Name: "ro-dba"}, Spec: access.RoleSpec{
		Allow: access.RoleConditions{DBLabels: access.Labels{"env": {"prod"}}, DBUsers: []string{"{{internal.logins}}", "^ro_.*$"}},
		Deny:  access.RoleConditions{DBUsers: []string{"ro_payroll"}},
	}})
	f.role(t, access.Role{Metadata: access.Metadata{Name: "requester"}, Spec: access.RoleSpec{Allow: access.RoleConditions{
		Request: &access.RequestConditions{Roles: []string{"ro-dba"}}}}})
	f.role(t, access.Role{Metadata: access.Metadata{Name: "reviewer"}, Spec: access.RoleSpec{Allow: access.RoleConditions{
		ReviewRequests: &access.ReviewConditions{Roles: []string{"ro-dba"}}}}})
	if _, err := f.svc.PutResource(ctx, f.admin, access.Resource{Kind: access.KindDB, Metadata: access.Metadata{Name: "orders", Labels: map[string]string{"env": "prod"}},
		Spec: access.ResourceSpec{Protocol: "postgres", URI: "orders.internal:5432"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutUser(ctx, f.admin, access.User{Metadata: access.Metadata{Name: "alice"},
		Spec: access.UserSpec{Roles: []string{"requester"}, Traits: map[string][]string{"logins": {"alice"}}}}); err != nil {
		t.Fatal(err)
	}
	alice, err := f.svc.Caller(ctx, "alice", access.SourceCLI)
	if err != nil {
		t.Fatal(err)
	}
	bob := f.user(t, "bob", "reviewer")
	r, err := f.svc.CreateRequest(ctx, alice, service.CreateRequestInput{Roles: []string{"ro-dba"}, Reason: "ticket 7: slow report"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = f.svc.Review(ctx, bob, r.ID, service.ReviewInput{Verdict: access.VerdictApprove}); err != nil || r.State != access.StateApproved {
		t.Fatalf("review: %s, %v", r.State, err)
	}
	csr := csrPEM(t)

	for _, tt := range []struct {
		dbUser    string
		err       error
		mentioned []string // in the error
		unsaid    string   // not in the error
	}{
		{dbUser: "ro_alice"},
		{dbUser: "alice"},
		{dbUser: "admin", err: access.ErrForbidden, mentioned: []string{`database user "admin" is not granted`, "ro-dba", "^ro_.*$", "alice"}, unsaid: "deny"},
		{dbUser: "ro_payroll", err: access.ErrForbidden, mentioned: []string{`"ro_payroll"`, "^ro_.*$", "a deny.db_users entry refuses it"}},
		{dbUser: "xro_alice", err: access.ErrForbidden, mentioned: []string{"^ro_.*$"}},
	} {
		cred, err := f.svc.IssueCredential(ctx, alice, r.ID, service.CredentialInput{Kind: access.CredentialDB, Resource: "orders", DBUser: tt.dbUser, CSR: csr})
		if tt.err == nil {
			if err != nil {
				t.Errorf("as %s: %v", tt.dbUser, err)
				continue
			}
			b, _ := pem.Decode([]byte(cred.Certificate))
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil || cert.Subject.String() != "CN="+tt.dbUser || cred.Subject != tt.dbUser {
				t.Errorf("as %s: certificate for %q (%v), subject %q", tt.dbUser, cert.Subject, err, cred.Subject)
			}
			continue
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("as %s: %v, want %v", tt.dbUser, err, tt.err)
			continue
		}
		for _, m := range tt.mentioned {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("as %s: error %q does not mention %s", tt.dbUser, err, m)
			}
		}
		if tt.unsaid != "" && strings.Contains(err.Error(), tt.unsaid) {
			t.Errorf("as %s: error %q mentions %s", tt.dbUser, err, tt.unsaid)
		}
	}

	// A pattern that is no valid expression is refused when the role is
	// saved, naming the field, and the stored role stays as it was.
	_, err = f.svc.PutRole(ctx, f.admin, access.Role{Metadata: access.Metadata{Name: "ro-dba"}, Spec: access.RoleSpec{
		Allow: access.RoleConditions{DBLabels: access.Labels{"env": {"prod"}}, DBUsers: []string{"alice", "^ro_(.*$"}}}})
	if !errors.Is(err, access.ErrInvalid) || !strings.Contains(err.Error(), `spec.allow.db_users[1]: invalid regular expression "^ro_(.*$"`) {
		t.Fatalf("a broken db_users expression: %v", err)
	}
	stored, err := f.svc.GetRole(ctx, f.admin, "ro-dba")
	if err != nil || strings.Join(stored.Spec.Allow.DBUsers, ",") != "{{internal.logins}},^ro_.*$" {
		t.Fatalf("stored role after a refused update: %v, %v", stored.Spec.Allow.DBUsers, err)
	}
}
