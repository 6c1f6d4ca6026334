package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse-dev/gatehouse/access"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error, msg string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Fatalf("err = %q, want it to contain %q", err, msg)
	}
}

func role(name string) access.Role {
	return access.Role{Kind: access.KindRole, Version: "v1", Metadata: access.Metadata{Name: name},
		Spec: access.RoleSpec{Allow: access.RoleConditions{Logins: []string{"root"}}}}
}

func user(name string, roles ...string) access.User {
	return access.User{Kind: access.KindUser, Version: "v1", Metadata: access.Metadata{Name: name},
		Spec: access.UserSpec{Roles: roles}}
}

func ev(typ, actor string) access.AuditEvent {
	return access.AuditEvent{Type: typ, Actor: actor, Outcome: "success"}
}

// raw reads a key's stored value under the default prefix.
func raw(t testing.TB, s *store.Store, key string) (map[string]json.RawMessage, bool) {
	t.Helper()
	resp := must[*clientv3.GetResponse](t)(s.Client().Get(ctxT(t), s.Prefix()+key))
	if len(resp.Kvs) == 0 {
		return nil, false
	}
	var m map[string]json.RawMessage
	noErr(t, json.Unmarshal(resp.Kvs[0].Value, &m))
	return m, true
}

func TestRoles(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)

	_, err := s.GetRole(ctx, "dba")
	wantErr(t, err, access.ErrNotFound, `role "dba": not found`)

	r := must[access.Role](t)(s.PutRole(ctx, role("dba"), ev("role.create", "admin")))
	if r.Metadata.Revision == 0 {
		t.Fatal("PutRole did not set Revision")
	}
	got := must[access.Role](t)(s.GetRole(ctx, "dba"))
	if got.Metadata.Revision != r.Metadata.Revision || got.Spec.Allow.Logins[0] != "root" {
		t.Fatalf("GetRole = %+v, want revision %d", got, r.Metadata.Revision)
	}

	// Stored form: envelope with schema version, no revision inside.
	env, ok := raw(t, s, "roles/dba")
	if !ok || string(env["schema"]) != "1" || strings.Contains(string(env["data"]), "revision") {
		t.Fatalf("stored value = %v", env)
	}

	// Conditional put: the revision read is compared.
	r2 := got
	r2.Spec.Allow.Logins = []string{"dba"}
	r2 = must[access.Role](t)(s.PutRole(ctx, r2))
	if r2.Metadata.Revision <= got.Metadata.Revision {
		t.Fatalf("revision did not grow: %d -> %d", got.Metadata.Revision, r2.Metadata.Revision)
	}
	_, err = s.PutRole(ctx, got) // stale
	wantErr(t, err, access.ErrConflict, `role "dba"`)

	must[access.Role](t)(s.PutRole(ctx, role("auditor")))
	roles := must[[]access.Role](t)(s.ListRoles(ctx))
	if len(roles) != 2 || roles[0].Metadata.Name != "auditor" || roles[1].Metadata.Name != "dba" || roles[1].Metadata.Revision != r2.Metadata.Revision {
		t.Fatalf("ListRoles = %+v", roles)
	}

	noErr(t, s.DeleteRole(ctx, "dba", ev("role.delete", "admin")))
	wantErr(t, s.DeleteRole(ctx, "dba"), access.ErrNotFound, `role "dba"`)
	_, err = s.GetRole(ctx, "dba")
	wantErr(t, err, access.ErrNotFound, "")

	_, err = s.PutRole(ctx, role("a/b"))
	wantErr(t, err, access.ErrInvalid, "")

	events := must[[]access.AuditEvent](t)(s.ListAudit(ctx, access.AuditFilter{Type: "role.*"}))
	if len(events) != 2 || events[0].Type != "role.create" || events[1].Type != "role.delete" || events[0].ID == "" || events[0].Time.IsZero() {
		t.Fatalf("audit = %+v", events)
	}
}

func TestUsersPasswordsTokensLocks(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)

	u := must[access.User](t)(s.CreateUser(ctx, user("alice", "dev"), ev("user.create", "admin")))
	if u.Metadata.Revision == 0 {
		t.Fatal("CreateUser did not set Revision")
	}
	_, err := s.CreateUser(ctx, user("alice"))
	wantErr(t, err, access.ErrAlreadyExists, `user "alice"`)
	must[access.User](t)(s.CreateUser(ctx, user("bob")))

	u.Spec.Roles = append(u.Spec.Roles, "dba")
	u = must[access.User](t)(s.PutUser(ctx, u))
	if got := must[access.User](t)(s.GetUser(ctx, "alice")); !slices.Equal(got.Spec.Roles, []string{"dev", "dba"}) || got.Metadata.Revision != u.Metadata.Revision {
		t.Fatalf("GetUser = %+v", got)
	}
	if users := must[[]access.User](t)(s.ListUsers(ctx)); len(users) != 2 {
		t.Fatalf("ListUsers = %+v", users)
	}

	// Passwords.
	_, err = s.GetPasswordHash(ctx, "alice")
	wantErr(t, err, access.ErrNotFound, `password of user "alice"`)
	wantErr(t, s.SetPasswordHash(ctx, "nobody", []byte("x")), access.ErrNotFound, `user "nobody"`)
	noErr(t, s.SetPasswordHash(ctx, "alice", []byte("$2a$10$hash"), ev("user.password", "alice")))
	if h := must[[]byte](t)(s.GetPasswordHash(ctx, "alice")); string(h) != "$2a$10$hash" {
		t.Fatalf("hash = %q", h)
	}

	// Tokens.
	now := time.Now().UTC().Truncate(time.Second)
	for _, tk := range []access.Token{
		{Hash: "aaaa1111", Kind: access.TokenInvite, User: "alice", Created: now, Expires: now.Add(time.Hour)},
		{Hash: "bbbb2222", Kind: access.TokenBot, User: "alice", Created: now, Expires: now.Add(time.Hour)},
		{Hash: "cccc3333", Kind: access.TokenBot, User: "bob", Created: now, Expires: now.Add(time.Hour)},
	} {
		noErr(t, s.CreateToken(ctx, tk))
	}
	wantErr(t, s.CreateToken(ctx, access.Token{Hash: "aaaa1111", User: "alice"}), access.ErrAlreadyExists, "")
	wantErr(t, s.CreateToken(ctx, access.Token{Hash: "dddd4444", User: "nobody"}), access.ErrNotFound, `user "nobody"`)
	if tk := must[access.Token](t)(s.GetToken(ctx, "aaaa1111")); tk.User != "alice" || !tk.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("GetToken = %+v", tk)
	}
	if tk := must[access.Token](t)(s.ConsumeToken(ctx, "aaaa1111")); tk.Kind != access.TokenInvite {
		t.Fatalf("ConsumeToken = %+v", tk)
	}
	_, err = s.ConsumeToken(ctx, "aaaa1111")
	wantErr(t, err, access.ErrNotFound, "")
	_, err = s.GetToken(ctx, "aaaa1111")
	wantErr(t, err, access.ErrNotFound, "")

	// Locks.
	_, err = s.GetLock(ctx, "bob")
	wantErr(t, err, access.ErrNotFound, `lock of user "bob"`)
	noErr(t, s.PutLock(ctx, access.Lock{User: "bob", Reason: "offboarding", CreatedBy: "admin"}, ev("lock.create", "admin")))
	if l := must[access.Lock](t)(s.GetLock(ctx, "bob")); l.Reason != "offboarding" || l.Created.IsZero() {
		t.Fatalf("GetLock = %+v", l)
	}
	noErr(t, s.DeleteLock(ctx, "bob"))
	wantErr(t, s.DeleteLock(ctx, "bob"), access.ErrNotFound, "")

	// DeleteUser: user, password and tokens go, the lock comes, in one txn.
	noErr(t, s.DeleteUser(ctx, "alice", access.Lock{Reason: "user deleted", CreatedBy: "admin"}, ev("user.delete", "admin")))
	_, err = s.GetUser(ctx, "alice")
	wantErr(t, err, access.ErrNotFound, "")
	_, err = s.GetPasswordHash(ctx, "alice")
	wantErr(t, err, access.ErrNotFound, "")
	_, err = s.GetToken(ctx, "bbbb2222")
	wantErr(t, err, access.ErrNotFound, "")
	must[access.Token](t)(s.GetToken(ctx, "cccc3333")) // bob's stays
	if l := must[access.Lock](t)(s.GetLock(ctx, "alice")); l.User != "alice" || l.Reason != "user deleted" {
		t.Fatalf("lock after delete = %+v", l)
	}
	if locks := must[[]access.Lock](t)(s.ListLocks(ctx)); len(locks) != 1 {
		t.Fatalf("ListLocks = %+v", locks)
	}
	wantErr(t, s.DeleteUser(ctx, "alice", access.Lock{}), access.ErrNotFound, `user "alice"`)
}

func TestResources(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	node := access.Resource{Kind: access.KindNode, Version: "v1",
		Metadata: access.Metadata{Name: "web-1", Labels: map[string]string{"env": "prod"}},
		Spec:     access.ResourceSpec{Hostname: "web-1", Addr: "10.0.0.1:22"}}
	db := access.Resource{Kind: access.KindDB, Version: "v1", Metadata: access.Metadata{Name: "orders"},
		Spec: access.ResourceSpec{Protocol: "postgres", URI: "db:5432"}}

	_, err := s.GetResource(ctx, access.KindNode, "web-1")
	wantErr(t, err, access.ErrNotFound, "resource node/web-1")
	node = must[access.Resource](t)(s.PutResource(ctx, node))
	must[access.Resource](t)(s.PutResource(ctx, db))
	got := must[access.Resource](t)(s.GetResource(ctx, access.KindNode, "web-1"))
	if got.Spec.Addr != "10.0.0.1:22" || got.Metadata.Revision != node.Metadata.Revision {
		t.Fatalf("GetResource = %+v", got)
	}
	list, rev, err := s.ListResources(ctx)
	noErr(t, err)
	if len(list) != 2 || list[0].Kind != access.KindDB || rev < node.Metadata.Revision {
		t.Fatalf("ListResources = %+v at %d", list, rev)
	}
	noErr(t, s.DeleteResource(ctx, access.KindDB, "orders"))
	wantErr(t, s.DeleteResource(ctx, access.KindDB, "orders"), access.ErrNotFound, "")
}

// TestLastResourceChange: the newest write of one kind, whatever the
// order of names, and unaffected by other kinds.
func TestLastResourceChange(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	last := func(kind string) int64 { return must[int64](t)(s.LastResourceChange(ctx, kind)) }
	if got := last(access.KindNode); got != 0 {
		t.Fatalf("no nodes: %d, want 0", got)
	}
	put := func(kind, name string) int64 {
		r := access.Resource{Kind: kind, Metadata: access.Metadata{Name: name}, Spec: access.ResourceSpec{Hostname: name}}
		return must[access.Resource](t)(s.PutResource(ctx, r)).Metadata.Revision
	}
	put(access.KindNode, "b")
	a := put(access.KindNode, "a") // newer, yet sorts first by name
	put(access.KindDB, "orders")
	if got := last(access.KindNode); got != a {
		t.Fatalf("latest node write at %d, want %d", got, a)
	}
	b := put(access.KindNode, "b")
	if got := last(access.KindNode); got != b {
		t.Fatalf("after rewriting b: %d, want %d", got, b)
	}
	_, err := s.LastResourceChange(ctx, "no/kind")
	wantErr(t, err, access.ErrInvalid, "resource kind")
}

func TestInitClusterConcurrent(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	_, err := s.GetCluster(ctx)
	wantErr(t, err, access.ErrNotFound, "cluster state")

	const n = 8
	type result struct {
		cs      access.ClusterState
		created bool
		err     error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cs := access.ClusterState{Name: fmt.Sprintf("replica-%d", i), CACertPEM: "cert", Created: time.Unix(int64(i), 0).UTC()}
			results[i].cs, results[i].created, results[i].err = s.InitCluster(ctx, cs)
		})
	}
	wg.Wait()
	created := 0
	for _, r := range results {
		noErr(t, r.err)
		if r.created {
			created++
		}
		if r.cs != results[0].cs {
			t.Fatalf("states differ: %+v vs %+v", r.cs, results[0].cs)
		}
	}
	if created != 1 {
		t.Fatalf("%d calls created the cluster state, want 1", created)
	}
	if got := must[access.ClusterState](t)(s.GetCluster(ctx)); got != results[0].cs {
		t.Fatalf("GetCluster = %+v", got)
	}
}

func TestConsumeTokenConcurrent(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	must[access.User](t)(s.CreateUser(ctx, user("alice")))
	noErr(t, s.CreateToken(ctx, access.Token{Hash: "feed", Kind: access.TokenInvite, User: "alice"}))

	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.ConsumeToken(ctx, "feed") })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, access.ErrNotFound):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d consumers succeeded, want 1", ok)
	}
}

func pendingRequest(id string, approvals int) access.Request {
	now := time.Now().UTC()
	return access.Request{
		ID: id, User: "alice", Roles: []string{"dba"}, Reason: "incident", State: access.StatePending,
		Created: now, PendingExpires: now.Add(time.Hour), Duration: access.Duration(time.Hour),
		Thresholds: []access.Threshold{{Name: "default", Approve: approvals, Deny: 1}},
		Source:     access.SourceCLI,
	}
}

func TestRequests(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)

	r := must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r1", 1), ev("request.create", "alice")))
	if r.Revision == 0 {
		t.Fatal("CreateRequest did not set Revision")
	}
	_, err := s.CreateRequest(ctx, pendingRequest("r1", 1))
	wantErr(t, err, access.ErrAlreadyExists, `request "r1"`)
	if got := must[access.Request](t)(s.GetRequest(ctx, "r1")); got.Revision != r.Revision || got.Thresholds[0].Approve != 1 {
		t.Fatalf("GetRequest = %+v", got)
	}
	must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r2", 1)))
	if list := must[[]access.Request](t)(s.ListRequests(ctx)); len(list) != 2 || list[0].ID != "r1" {
		t.Fatalf("ListRequests = %+v", list)
	}

	// fn errors come back unchanged and nothing is written.
	boom := errors.New("boom")
	_, err = s.UpdateRequest(ctx, "r1", func(r *access.Request) ([]access.AuditEvent, error) {
		r.State = access.StateDenied
		return nil, boom
	})
	if err != boom {
		t.Fatalf("err = %v, want boom itself", err)
	}
	if got := must[access.Request](t)(s.GetRequest(ctx, "r1")); got.State != access.StatePending || got.Revision != r.Revision {
		t.Fatalf("request changed after fn error: %+v", got)
	}

	_, err = s.UpdateRequest(ctx, "nope", func(*access.Request) ([]access.AuditEvent, error) { return nil, nil })
	wantErr(t, err, access.ErrNotFound, `request "nope"`)

	// A no-op does not write.
	same := must[access.Request](t)(s.UpdateRequest(ctx, "r1", func(*access.Request) ([]access.AuditEvent, error) { return nil, nil }))
	if same.Revision != r.Revision {
		t.Fatalf("no-op update wrote: revision %d -> %d", r.Revision, same.Revision)
	}

	upd := must[access.Request](t)(s.UpdateRequest(ctx, "r1", func(r *access.Request) ([]access.AuditEvent, error) {
		if r.Revision == 0 {
			return nil, errors.New("fn saw no revision")
		}
		r.State = access.StateApproved
		return []access.AuditEvent{{Type: "request.approve", Actor: "bob", RequestID: r.ID}}, nil
	}))
	if upd.State != access.StateApproved || upd.Revision <= r.Revision {
		t.Fatalf("UpdateRequest = %+v", upd)
	}
	if got := must[access.Request](t)(s.GetRequest(ctx, "r1")); got.Revision != upd.Revision || got.State != access.StateApproved {
		t.Fatalf("GetRequest after update = %+v", got)
	}
	events := must[[]access.AuditEvent](t)(s.ListAudit(ctx, access.AuditFilter{RequestID: "r1"}))
	if len(events) != 1 || events[0].Type != "request.approve" {
		t.Fatalf("audit = %+v", events)
	}
}

// TestUpdateRequestConcurrent is the lost-update proof: 40 reviewers write
// at once; every review and every counter increment must survive.
func TestUpdateRequestConcurrent(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r1", 20)))

	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	var calls sync.Map // author -> fn calls, to show retries happened
	for i := range n {
		author := fmt.Sprintf("reviewer-%02d", i)
		wg.Go(func() {
			_, errs[i] = s.UpdateRequest(ctx, "r1", func(r *access.Request) ([]access.AuditEvent, error) {
				v, _ := calls.LoadOrStore(author, new(int))
				*v.(*int)++
				for _, rv := range r.Reviews {
					if rv.Author == author {
						return nil, fmt.Errorf("duplicate review by %s: %w", author, access.ErrConflict)
					}
				}
				r.Reviews = append(r.Reviews, access.Review{Author: author, Verdict: access.VerdictApprove, Time: time.Now().UTC(), Kind: access.ReviewKindReview})
				r.Thresholds[0].Approvals++
				if r.Thresholds[0].Approvals >= r.Thresholds[0].Approve {
					r.State = access.StateApproved
				}
				return []access.AuditEvent{{Type: "request.review", Actor: author, RequestID: r.ID}}, nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("reviewer %d: %v", i, err)
		}
	}
	got := must[access.Request](t)(s.GetRequest(ctx, "r1"))
	if len(got.Reviews) != n || got.Thresholds[0].Approvals != n || got.State != access.StateApproved {
		t.Fatalf("reviews=%d approvals=%d state=%s, want %d, %d, APPROVED", len(got.Reviews), got.Thresholds[0].Approvals, got.State, n, n)
	}
	seen := map[string]int{}
	for _, rv := range got.Reviews {
		seen[rv.Author]++
	}
	retries, most := 0, 0
	for i := range n {
		author := fmt.Sprintf("reviewer-%02d", i)
		if seen[author] != 1 {
			t.Fatalf("%s reviewed %d times", author, seen[author])
		}
		v, _ := calls.Load(author)
		retries += *v.(*int) - 1
		most = max(most, *v.(*int))
	}
	t.Logf("%d fn re-runs after lost races, at most %d calls for one writer", retries, most)
	events := must[[]access.AuditEvent](t)(s.ListAudit(ctx, access.AuditFilter{RequestID: "r1", Type: "request.review"}))
	if len(events) != n {
		t.Fatalf("%d audit events, want %d (one per successful write)", len(events), n)
	}
}

func TestAudit(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	// Appended out of order: the key orders them by time.
	noErr(t, s.AppendAudit(ctx,
		access.AuditEvent{Time: at(3), Type: "request.review", Actor: "bob", RequestID: "r1"},
		access.AuditEvent{Time: at(1), Type: "request.create", Actor: "alice", RequestID: "r1"},
		access.AuditEvent{Time: at(2), Type: "user.login", Actor: "bob"},
	))
	noErr(t, s.AppendAudit(ctx,
		access.AuditEvent{Time: at(4), Type: "request.create", Actor: "carol", RequestID: "r2"},
		access.AuditEvent{Time: at(5), Type: "request.approve", Actor: "bob", RequestID: "r2", ID: "fixed-id"},
	))
	noErr(t, s.AppendAudit(ctx)) // nothing

	types := func(evs []access.AuditEvent) string {
		var out []string
		for _, e := range evs {
			out = append(out, fmt.Sprintf("%s@%d", e.Type, int(e.Time.Sub(base)/time.Minute)))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		f    access.AuditFilter
		want string
	}{
		{access.AuditFilter{}, "request.create@1 user.login@2 request.review@3 request.create@4 request.approve@5"},
		{access.AuditFilter{Since: at(2)}, "user.login@2 request.review@3 request.create@4 request.approve@5"},
		{access.AuditFilter{Since: at(2), Until: at(4)}, "user.login@2 request.review@3"},
		{access.AuditFilter{Type: "request.*"}, "request.create@1 request.review@3 request.create@4 request.approve@5"},
		{access.AuditFilter{Type: "request.create"}, "request.create@1 request.create@4"},
		{access.AuditFilter{RequestID: "r2"}, "request.create@4 request.approve@5"},
		{access.AuditFilter{Actor: "bob", Since: at(3)}, "request.review@3 request.approve@5"},
		{access.AuditFilter{Type: "request.*", Limit: 2}, "request.create@1 request.review@3"},
		{access.AuditFilter{Until: at(1)}, ""},
	} {
		got := must[[]access.AuditEvent](t)(s.ListAudit(ctx, tc.f))
		if types(got) != tc.want {
			t.Errorf("ListAudit(%+v) = %q, want %q", tc.f, types(got), tc.want)
		}
	}
	all := must[[]access.AuditEvent](t)(s.ListAudit(ctx, access.AuditFilter{RequestID: "r2"}))
	if all[1].ID != "fixed-id" || all[0].ID == "" {
		t.Fatalf("ids = %q, %q", all[0].ID, all[1].ID)
	}
	// The key range follows Since/Until.
	resp := must[*clientv3.GetResponse](t)(s.Client().Get(ctx, s.Prefix()+"audit/", clientv3.WithPrefix(), clientv3.WithKeysOnly()))
	k := string(resp.Kvs[0].Key)
	if want := fmt.Sprintf("%saudit/%020d-", s.Prefix(), at(1).UnixNano()); !strings.HasPrefix(k, want) {
		t.Fatalf("first audit key %q, want prefix %q", k, want)
	}
}

// TestAuditPaging crosses the page size of ListAudit.
func TestAuditPaging(t *testing.T) {
	s := storetest.Embedded(t)
	ctx := ctxT(t)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const n = 1100
	for i := 0; i < n; i += 100 {
		var evs []access.AuditEvent
		for j := i; j < i+100; j++ {
			typ := "request.review"
			if j%10 == 0 {
				typ = "user.login"
			}
			evs = append(evs, access.AuditEvent{Time: base.Add(time.Duration(j) * time.Second), Type: typ})
		}
		noErr(t, s.AppendAudit(ctx, evs...))
	}
	all := must[[]access.AuditEvent](t)(s.ListAudit(ctx, access.AuditFilter{}))
	if len(all) != n || !slices.IsSortedFunc(all, func(a, b access.AuditEvent) int { return a.Time.Compare(b.Time) }) {
		t.Fatalf("got %d events (sorted: %v)", len(all), slices.IsSortedFunc(all, func(a, b access.AuditEvent) int { return a.Time.Compare(b.Time) }))
	}
	logins := must[[]access.AuditEvent](t)(s.ListAudit(ctx, access.AuditFilter{Type: "user.login", Limit: 60}))
	if len(logins) != 60 || !logins[59].Time.Equal(base.Add(590*time.Second)) {
		t.Fatalf("got %d logins, last at %v", len(logins), logins[len(logins)-1].Time)
	}
}

func TestRestart(t *testing.T) {
	dir := storetest.ShortTempDir(t)
	ctx := ctxT(t)
	start := func() (*store.Store, func()) {
		t.Helper()
		m, err := embeddedStart(ctx, t, dir)
		noErr(t, err)
		s, err := store.Dial(ctx, store.Config{Endpoints: m.Endpoints(), Logger: storetest.Logger(t)})
		noErr(t, err)
		return s, func() { _ = s.Close(); _ = m.Close() }
	}
	s, stop := start()
	must[access.Role](t)(s.PutRole(ctx, role("dba")))
	must[access.Request](t)(s.CreateRequest(ctx, pendingRequest("r1", 1), ev("request.create", "alice")))
	stop()

	s, stop = start()
	defer stop()
	must[access.Role](t)(s.GetRole(ctx, "dba"))
	must[access.Request](t)(s.GetRequest(ctx, "r1"))
	if evs := must[[]access.AuditEvent](t)(s.ListAudit(ctx, access.AuditFilter{})); len(evs) != 1 {
		t.Fatalf("audit after restart: %+v", evs)
	}
}

func TestRunElected(t *testing.T) {
	s1, m := storetest.EmbeddedMember(t)
	s2 := must[*store.Store](t)(store.Dial(ctxT(t), store.Config{Endpoints: m.Endpoints(), Logger: storetest.Logger(t), ElectionTTL: 2 * time.Second}))
	t.Cleanup(func() { _ = s2.Close() })
	ctx := ctxT(t)

	type term struct {
		who string
		ctx context.Context
	}
	terms := make(chan term, 10)
	var mu sync.Mutex
	leaders := 0
	// Deleting the leader key by hand lets the other replica win before the
	// old leader's fn has noticed: for that moment two fns run, which is
	// why leader writes are guarded by the key's revision (checked below).
	overlapAllowed := false
	run := func(ctx context.Context, s *store.Store, who string) {
		_ = s.RunElected(ctx, "sweeper", func(lctx context.Context) {
			mu.Lock()
			leaders++
			if leaders != 1 && !overlapAllowed {
				t.Errorf("%d leaders at once", leaders)
			}
			mu.Unlock()
			terms <- term{who, lctx}
			<-lctx.Done()
			mu.Lock()
			leaders--
			mu.Unlock()
		})
	}
	ctx1, cancel1 := context.WithCancel(ctx)
	ctx2, cancel2 := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { run(ctx1, s1, "s1") })
	first := <-terms
	wg.Go(func() { run(ctx2, s2, "s2") })

	// The leader's writes are guarded and succeed while it leads.
	l, ok := store.LeaderFrom(first.ctx)
	if !ok || l.Rev == 0 {
		t.Fatal("no leader in fn's context")
	}
	must[access.Role](t)(s1.PutRole(first.ctx, role("by-leader")))

	// Deleting the leader key ends leadership; the other side takes over.
	mu.Lock()
	overlapAllowed = true
	mu.Unlock()
	must[*clientv3.DeleteResponse](t)(s1.Client().Delete(ctx, l.Key))
	select {
	case <-first.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("leadership context not cancelled after the key was deleted")
	}
	// A write still carrying the old leadership is refused, not applied.
	_, err := s1.PutRole(context.WithoutCancel(first.ctx), role("late"))
	wantErr(t, err, store.ErrNotLeader, "")
	_, err = s1.GetRole(ctx, "late")
	wantErr(t, err, access.ErrNotFound, "")

	var second term
	select {
	case second = <-terms:
	case <-time.After(10 * time.Second):
		t.Fatal("no new leader")
	}
	t.Logf("first leader %s, then %s", first.who, second.who)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return leaders == 1 })
	mu.Lock()
	overlapAllowed = false
	mu.Unlock()

	// Stopping the current leader hands over to the other.
	if second.who == "s1" {
		cancel1()
	} else {
		cancel2()
	}
	select {
	case third := <-terms:
		if third.who == second.who {
			t.Fatalf("%s leads again after it stopped", third.who)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no hand-over after the leader stopped")
	}
	cancel1()
	cancel2()
	wg.Wait()
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
