package access

import (
	"context"
	"time"
)

// Store is everything Gatehouse persists. The etcd implementation lives in
// store/; every method that writes is one etcd transaction.
//
// Errors: ErrNotFound for a missing object, ErrAlreadyExists for a
// create-if-absent that found one, ErrUnavailable when etcd cannot be
// reached (nothing was written), ctx.Err() on cancellation.
type Store interface {
	ObjectStore
	IdentityStore
	RequestStore
	AuditLog
	PolicyStore
	OutboxStore
	ChatStore
	DeviceLoginStore
	LoginAttemptStore // loginlimit.go
}

// PolicyStore keeps the policy bundle in force, so that every replica
// evaluates the same one.
type PolicyStore interface {
	// GetPolicyBundle returns the bundle in force (ErrNotFound when none
	// was pushed: the built-in default applies).
	GetPolicyBundle(ctx context.Context) (PolicyBundle, error)
	// PutPolicyBundle installs a new bundle; its Revision is the etcd
	// revision of the write. A bundle over MaxPolicyBundleBytes is refused.
	PutPolicyBundle(ctx context.Context, b PolicyBundle, events ...AuditEvent) (PolicyBundle, error)
	// WatchPolicyBundle sends each bundle installed after fromRev (and the
	// current one after a compaction). The channel closes when ctx ends.
	WatchPolicyBundle(ctx context.Context, fromRev int64) <-chan PolicyBundle
}

// MaxPolicyBundleBytes caps a bundle far below etcd's 1.5 MiB request limit.
const MaxPolicyBundleBytes = 1 << 20

// PolicyBundle is a directory of .rego files (and an optional data.json).
type PolicyBundle struct {
	Files    map[string]string `json:"files"`
	Author   string            `json:"author"`
	Created  time.Time         `json:"created"`
	Revision int64             `json:"revision,omitempty"`
}

// Size is the bundle's size in bytes.
func (b PolicyBundle) Size() int {
	n := 0
	for name, src := range b.Files {
		n += len(name) + len(src)
	}
	return n
}

// ObjectStore keeps roles, users and resources. Put* upsert and return the
// object with its new Revision; Create* fail with ErrAlreadyExists.
type ObjectStore interface {
	GetRole(ctx context.Context, name string) (Role, error)
	ListRoles(ctx context.Context) ([]Role, error)
	PutRole(ctx context.Context, r Role, events ...AuditEvent) (Role, error)
	DeleteRole(ctx context.Context, name string, events ...AuditEvent) error

	GetUser(ctx context.Context, name string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	CreateUser(ctx context.Context, u User, events ...AuditEvent) (User, error)
	PutUser(ctx context.Context, u User, events ...AuditEvent) (User, error)
	// DeleteUser removes the user, its password and its tokens, and locks the
	// name in the same transaction, so live session certificates stop working.
	DeleteUser(ctx context.Context, name string, lock Lock, events ...AuditEvent) error

	GetResource(ctx context.Context, kind, name string) (Resource, error)
	// ListResources returns every resource and the etcd revision of the read,
	// from which WatchResources can continue.
	ListResources(ctx context.Context) ([]Resource, int64, error)
	// LastResourceChange is the revision of the latest write to a resource
	// of kind still stored (0: none), read without decoding any: what a
	// watch-fed cache compares its own revision with before it trusts a
	// miss.
	LastResourceChange(ctx context.Context, kind string) (int64, error)
	PutResource(ctx context.Context, r Resource, events ...AuditEvent) (Resource, error)
	DeleteResource(ctx context.Context, kind, name string, events ...AuditEvent) error
	// WatchResources streams resource changes after fromRev. On etcd
	// compaction it sends an EventReset with the full current snapshot and
	// continues from that read's revision. The channel closes when ctx ends.
	WatchResources(ctx context.Context, fromRev int64) <-chan ResourceEvent
}

// IdentityStore keeps what authentication needs.
type IdentityStore interface {
	// Principal reads, in one consistent etcd read, what authorizing a call
	// of user needs: the user (ErrNotFound if absent), its lock if any, and
	// every role, from which callers also resolve requested and
	// search_as roles. Roles are few; reading them with the user costs one
	// round trip instead of one per role.
	Principal(ctx context.Context, user string) (Principal, error)

	// InitCluster stores cs unless cluster state exists; it returns the state
	// in force and whether this call created it (create-if-absent).
	InitCluster(ctx context.Context, cs ClusterState) (ClusterState, bool, error)
	GetCluster(ctx context.Context) (ClusterState, error)
	// UpdateCluster replaces the cluster state if it is still at
	// cs.Revision (ErrConflict otherwise), with events in the same
	// transaction.
	UpdateCluster(ctx context.Context, cs ClusterState, events ...AuditEvent) (ClusterState, error)

	GetPasswordHash(ctx context.Context, user string) ([]byte, error)
	SetPasswordHash(ctx context.Context, user string, hash []byte, events ...AuditEvent) error

	CreateToken(ctx context.Context, t Token, events ...AuditEvent) error
	GetToken(ctx context.Context, hash string) (Token, error)
	// ConsumeToken deletes the token and returns it, in one transaction, so a
	// single-use token works once even under concurrent use.
	ConsumeToken(ctx context.Context, hash string) (Token, error)

	GetLock(ctx context.Context, user string) (Lock, error)
	ListLocks(ctx context.Context) ([]Lock, error)
	PutLock(ctx context.Context, l Lock, events ...AuditEvent) error
	DeleteLock(ctx context.Context, user string, events ...AuditEvent) error
}

// RequestStore keeps access requests.
type RequestStore interface {
	// CreateRequest writes a new request (ErrAlreadyExists if the id is
	// taken) with its audit events in one transaction.
	CreateRequest(ctx context.Context, r Request, events ...AuditEvent) (Request, error)
	GetRequest(ctx context.Context, id string) (Request, error)
	ListRequests(ctx context.Context) ([]Request, error)
	// UpdateRequest reads the request, calls fn on a copy, and writes the
	// result with fn's audit events in one transaction that compares the
	// request's mod revision. When another writer got there first it reads
	// again and calls fn again, so fn must be a pure function of the request.
	// An error from fn aborts without writing and is returned as is.
	UpdateRequest(ctx context.Context, id string, fn func(*Request) ([]AuditEvent, error)) (Request, error)
	// CreateRequestFx and UpdateRequestFx are CreateRequest and
	// UpdateRequest that also write outbox messages in the same
	// transaction.
	CreateRequestFx(ctx context.Context, r Request, fx Effects) (Request, error)
	UpdateRequestFx(ctx context.Context, id string, fn func(*Request) (Effects, error)) (Request, error)
	// WatchRequests streams request changes after fromRev (0: from now),
	// with the same compaction rule as WatchResources.
	WatchRequests(ctx context.Context, fromRev int64) <-chan RequestEvent
}

// AuditLog keeps audit events.
type AuditLog interface {
	AppendAudit(ctx context.Context, events ...AuditEvent) error
	// ListAudit returns matching events, oldest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// AuditFilter selects audit events. Zero fields match everything. Type may
// end in "*" to match a prefix ("request.*").
type AuditFilter struct {
	Since     time.Time
	Until     time.Time
	Type      string
	RequestID string
	Actor     string
	Limit     int
}

// Principal is a user with its lock and the roles in force, read at one
// etcd revision. The roles may share slices and maps with a cache of the
// store: read them, expand them (ExpandTraits copies), never modify them.
type Principal struct {
	User     User
	Lock     *Lock
	Roles    map[string]Role
	Revision int64
}

// ClusterState is created once, on the first start against empty storage.
// The TLS CA's private key is in exactly one of CAKeyPEM and CAKeySealed;
// read it only through ca.OpenClusterKey.
type ClusterState struct {
	Name      string `json:"name"`
	CACertPEM string `json:"ca_cert_pem"`
	// CAKeyPEM is the private key in the clear: only on a cluster that
	// runs without a key-encryption key.
	CAKeyPEM string `json:"ca_key_pem,omitempty"`
	// CAKeySealed is the private key PEM sealed under the key-encryption
	// key (base64 of the KEK header || nonce || AES-256-GCM ciphertext; see
	// ca/kek.go and ca.SealClusterKey).
	CAKeySealed string    `json:"ca_key_sealed,omitempty"`
	Created     time.Time `json:"created"`
	// Revision is the state's etcd mod revision, for UpdateCluster.
	Revision int64 `json:"-"`
}

// Token kinds.
const (
	TokenInvite = "invite" // single use: set a password
	TokenBot    = "bot"    // bearer token for automation, until it expires
)

// Token is an invite or machine token. Only the SHA-256 of the secret is
// stored.
type Token struct {
	Hash    string    `json:"hash"`
	Kind    string    `json:"kind"`
	User    string    `json:"user"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// EventType is the kind of a watch event.
type EventType string

// Watch event types.
const (
	EventPut    EventType = "put"
	EventDelete EventType = "delete"
	// EventReset replaces everything the consumer knows with Snapshot; sent
	// after a compaction made the missed events unavailable.
	EventReset EventType = "reset"
)

// RequestEvent is one change of a request. For EventDelete only Request.ID
// is set.
type RequestEvent struct {
	Type     EventType `json:"type"`
	Request  Request   `json:"request"`
	Snapshot []Request `json:"snapshot,omitempty"`
	Revision int64     `json:"revision"`
}

// ResourceEvent is one change of a resource. For EventDelete only the
// resource's Kind and Metadata.Name are set.
type ResourceEvent struct {
	Type     EventType  `json:"type"`
	Resource Resource   `json:"resource"`
	Snapshot []Resource `json:"snapshot,omitempty"`
	Revision int64      `json:"revision"`
}
