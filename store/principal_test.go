package store_test

import (
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func TestPrincipal(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	must[access.Role](t)(s.PutRole(ctx, role("dba")))
	must[access.Role](t)(s.PutRole(ctx, role("access")))
	must[access.User](t)(s.CreateUser(ctx, user("alice", "dba")))

	p := must[access.Principal](t)(s.Principal(ctx, "alice"))
	if p.User.Metadata.Name != "alice" || p.Lock != nil || len(p.Roles) != 2 || p.Revision == 0 {
		t.Fatalf("principal = %+v", p)
	}

	// A changed role is seen at once (the decode cache is keyed by mod
	// revision).
	changed := role("dba")
	changed.Spec.Allow.Logins = []string{"postgres"}
	must[access.Role](t)(s.PutRole(ctx, changed))
	p = must[access.Principal](t)(s.Principal(ctx, "alice"))
	if got := p.Roles["dba"].Spec.Allow.Logins; len(got) != 1 || got[0] != "postgres" {
		t.Fatalf("dba logins after update = %v", got)
	}
	// A right taken away is gone at once too: the new version is not
	// merged into the cached one.
	held := p.Roles["dba"]
	stripped := role("dba")
	stripped.Spec.Allow.Logins = nil
	must[access.Role](t)(s.PutRole(ctx, stripped))
	p = must[access.Principal](t)(s.Principal(ctx, "alice"))
	if got := p.Roles["dba"].Spec.Allow.Logins; len(got) != 0 {
		t.Fatalf("dba logins after they were removed = %v", got)
	}
	if got := held.Spec.Allow.Logins; len(got) != 1 || got[0] != "postgres" {
		t.Fatalf("a role read earlier changed under its holder: logins %v", got)
	}

	if err := s.PutLock(ctx, access.Lock{User: "alice", Created: time.Now(), CreatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	p = must[access.Principal](t)(s.Principal(ctx, "alice"))
	if p.Lock == nil {
		t.Fatal("lock not returned")
	}

	_, err := s.Principal(ctx, "nobody")
	wantErr(t, err, access.ErrNotFound, `user "nobody"`)
}
