package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func TestPolicyBundle(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	_, err := s.GetPolicyBundle(ctx)
	wantErr(t, err, access.ErrNotFound, "policy bundle")

	watch := s.WatchPolicyBundle(ctx, 0)
	b := must[access.PolicyBundle](t)(s.PutPolicyBundle(ctx, access.PolicyBundle{Files: map[string]string{"a.rego": "package gatehouse\n"}, Author: "admin"}, ev("policy.push", "admin")))
	if b.Revision == 0 {
		t.Fatal("no revision")
	}
	got := must[access.PolicyBundle](t)(s.GetPolicyBundle(ctx))
	if got.Revision != b.Revision || got.Files["a.rego"] != "package gatehouse\n" {
		t.Fatalf("get = %+v", got)
	}
	select {
	case w := <-watch:
		if w.Revision != b.Revision {
			t.Fatalf("watched revision %d, want %d", w.Revision, b.Revision)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event")
	}

	huge := access.PolicyBundle{Files: map[string]string{"big.rego": strings.Repeat("x", access.MaxPolicyBundleBytes)}}
	_, err = s.PutPolicyBundle(ctx, huge)
	wantErr(t, err, access.ErrInvalid, "at most")
	if still := must[access.PolicyBundle](t)(s.GetPolicyBundle(ctx)); still.Revision != b.Revision {
		t.Fatal("a refused bundle replaced the one in force")
	}
}
