// Package store is jmlgate's transactional storage contract. It imports only
// the standard library; engines live in sub-packages named after their
// technology (store/sqlite, store/postgres) and prove their behaviour with the
// shared conformance suite in store/storetest.
//
// Every state change goes through Store.Update: the SCIM write, the audit
// record it implies (and, later, the connector jobs) commit in one
// transaction or not at all.
//
// Times (Created, LastModified, Token and AuditRecord times) round-trip
// exactly: what comes back is Equal to what was stored, to the nanosecond,
// and is in UTC. The audit chain hashes Time, so an engine must not round.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Engines wrap them with %w; callers test with errors.Is.
var (
	// ErrNotFound: the addressed row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a uniqueness constraint (resource id, userName, token
	// id/name/hash, audit sequence) would be violated, or a version check
	// failed. Nothing was written. Group displayNames are not unique.
	ErrConflict = errors.New("store: conflict")
)

// Resource types stored.
const (
	TypeUser  = "User"
	TypeGroup = "Group"
	// TypeIdentity is the resource type of lifecycle audit records.
	TypeIdentity = "Identity"
)

// Resource is one SCIM resource as stored. Data holds the JSON object of every
// attribute except id, meta and, for groups, members (which live in their own
// table so users' "groups" and large groups stay cheap).
type Resource struct {
	Type       string
	ID         string // unique across both types
	ExternalID string // "" when absent
	// Name is userName for users and displayName for groups. For users it is
	// unique among live users, compared case-insensitively.
	Name string
	// Display is what member lists show: displayName, else userName.
	Display      string
	Version      int64 // starts at 1, +1 on every write
	Created      time.Time
	LastModified time.Time
	Data         []byte
	// Groups lists the groups the resource is a direct member of, ordered
	// by id, when GroupsRead is set (ListQuery.WithGroups asked for them in
	// the same statement); otherwise use ReadTx.GroupsOf.
	Groups     []GroupRef
	GroupsRead bool
}

// Member is one entry of a group's members.
type Member struct {
	Value   string // member resource id
	Type    string // "User" or "Group"
	Display string // filled on read from the member resource
}

// GroupRef is one group a resource belongs to.
type GroupRef struct {
	ID      string
	Display string
}

// IndexAttr names the attributes a ListQuery may use as an index.
type IndexAttr string

// Indexed attributes.
const (
	IndexID         IndexAttr = "id"
	IndexExternalID IndexAttr = "externalId" // "" matches nothing
	IndexName       IndexAttr = "name"       // compared case-insensitively
)

// SortKey names the orders ListResources supports natively.
type SortKey string

// Sort keys. SortNone is creation order; every other key breaks ties by
// creation order, so pages are stable. Descending reverses the whole order,
// ties included. SortName and SortDisplay compare case-insensitively,
// SortExternalID exactly, and resources without an externalId sort after all
// others (before them when Descending), as RFC 7644 §3.4.2.3 asks.
const (
	SortNone         SortKey = ""
	SortName         SortKey = "name"
	SortExternalID   SortKey = "externalId"
	SortCreated      SortKey = "created"
	SortLastModified SortKey = "lastModified"
	SortDisplay      SortKey = "display"
)

// ListQuery selects resources of one type.
type ListQuery struct {
	Type string
	// IndexAttr/IndexValue narrow the result to resources whose indexed
	// attribute equals IndexValue. Empty IndexAttr: no narrowing.
	IndexAttr  IndexAttr
	IndexValue string
	Sort       SortKey
	Descending bool
	// WithGroups fills each returned resource's Groups in the same read.
	WithGroups bool
	// Offset skips that many results; Limit caps them (<0: no cap, 0: none,
	// only the total is computed).
	Offset int
	Limit  int
}

// Token is an API bearer token. Only the SHA-256 of the token is stored.
type Token struct {
	ID      string
	Name    string // unique
	Hash    []byte // SHA-256 of the token value
	Scopes  []string
	Created time.Time
	Expires time.Time // zero: never
	Revoked time.Time // zero: live
}

// AuditRecord is one entry of the hash-linked audit chain. The store only
// persists records; internal/audit computes Hash and checks the chain.
type AuditRecord struct {
	Seq          int64 // 1, 2, 3, … with no gaps
	Time         time.Time
	Actor        string
	Action       string // e.g. "user.create", "group.patch", "token.create"
	ResourceType string
	ResourceID   string
	RequestID    string
	BeforeDigest string // hex SHA-256 of the state before, "" if none
	AfterDigest  string // hex SHA-256 of the state after, "" if none
	PrevHash     []byte
	Hash         []byte
}

// Identity states (DESIGN.md "Lifecycle").
const (
	StatePreHire     = "pre_hire"
	StateAwaitingMFA = "awaiting_mfa"
	StateActive      = "active"
	StateTerminated  = "terminated"
	StateDeleted     = "deleted"
)

// Identity is the lifecycle record of one SCIM user; ID is the user's id.
// It outlives the user: a deleted user's identity stays, in state deleted,
// with its history.
type Identity struct {
	ID        string
	UserName  string // as last seen; kept after deletion for the history
	State     string
	StartDate time.Time // lifecycle extension; zero when absent
	EndDate   time.Time
	// MFAMethod and MFAEnrolledAt record proven MFA enrollment; zero when
	// none (rehire and leaver clear them).
	MFAMethod     string
	MFAEnrolledAt time.Time
	// Desired is the access the identity's roles grant, as JSON (its shape
	// belongs to package workflows). It is computed in every state; nothing
	// in it is granted before the identity is active.
	Desired []byte
	// LeaverAt is when the identity last became terminated; zero otherwise.
	LeaverAt time.Time
	// RevokedAt is when the last connector acknowledged a leaver's
	// revocation (RevokedAt - LeaverAt is the time-to-revoke); zero while
	// revocations are outstanding and for identities that are not leavers.
	RevokedAt time.Time
	// NextCheck is the earliest time a time-driven transition (start or end
	// date) may fall due; zero when none can.
	NextCheck time.Time
	Version   int64 // 1 on creation, +1 on every change
	Created   time.Time
	Updated   time.Time
}

// Delivery states.
const (
	DeliveryPending = "pending" // waiting for RunAt
	DeliveryRunning = "running" // claimed by a worker
	DeliveryDead    = "dead"    // gave up: listed for a human, retryable
)

// Delivery priorities: lower runs first.
const (
	PriorityRevoke = 0 // leavers and removed access
	PriorityGrant  = 1 // joiners and new access
)

// Delivery is a level-triggered job: "make connector Connector match the
// desired access of identity IdentityID". It carries no operations: the
// worker reads desired and actual access when it runs, so a job that runs
// late or twice can never replay a stale grant.
type Delivery struct {
	ID         int64
	IdentityID string
	Connector  string
	State      string
	Priority   int
	Attempts   int       // runs started, including the current one
	RunAt      time.Time // not before
	Enqueued   time.Time // when the oldest change this job covers was made
	LastError  string    // "" when none; safe to show (no secrets)
	Updated    time.Time
}

// DeliveryQuery selects deliveries; zero fields do not filter. Results are
// in ID order, after After, at most Limit (<= 0: 100).
type DeliveryQuery struct {
	State      string
	Connector  string
	IdentityID string
	After      int64
	Limit      int
}

// QueueStats summarises one connector's queue.
type QueueStats struct {
	Pending       int
	Running       int
	Dead          int
	OldestPending time.Time // Enqueued of the oldest pending job; zero when none
}

// Account is what jmlgate last knew to be true in one connector for one
// identity: the account's ref, whether it is enabled, and the entitlements
// granted through jmlgate. Only the dispatcher (one job per identity and
// connector at a time) and reconciliation write it.
type Account struct {
	IdentityID   string
	Connector    string
	Ref          string // the target's id of the account; "" if never created
	Enabled      bool
	Entitlements []string // sorted
	Updated      time.Time
	// Pending is set while an EnsureAccount's outcome is unknown (sent, no
	// answer recorded): the account may exist at the target even though
	// Ref is "". Cleared once an ensure or a lookup settles it.
	Pending bool
	// Maybe are entitlements whose grant was sent but not confirmed: they
	// may be held, so they are revoked when no longer wanted (and granted
	// again while they are). Sorted, not in Entitlements.
	Maybe []string
}

// TOTPEnrollment is an identity's built-in TOTP authenticator (RFC 6238).
// The store never sees the secret in clear: Secret is what the vault sealed.
type TOTPEnrollment struct {
	IdentityID  string
	Secret      string    // sealed by internal/secrets (JWE compact)
	Created     time.Time // when enrollment began
	Verified    time.Time // first accepted code; zero until then
	LastStep    int64     // last accepted RFC 6238 time step (no replay)
	Failures    int       // consecutive rejected codes
	LockedUntil time.Time // zero when verification is not locked
	Version     int64     // 1 on creation, +1 on every change
}

// Exception is a time-bound MFA exception ("mfa_bypass"): while live it
// lets an identity be active without proven MFA. It is never deleted; ending
// it early sets Ended.
type Exception struct {
	ID                   string
	IdentityID           string
	Type                 string // "mfa_bypass"
	Justification        string
	CompensatingControls string
	Owner                string // who answers for it
	CreatedBy            string // the approver's principal
	Created              time.Time
	ExpiresAt            time.Time // mandatory
	Ended                time.Time // zero unless ended early
	EndedBy              string
}

// Live reports whether the exception applies at now.
func (e *Exception) Live(now time.Time) bool {
	return now.Before(e.ExpiresAt) && (e.Ended.IsZero() || now.Before(e.Ended))
}

// Approval states.
const (
	ApprovalPending   = "pending"
	ApprovalApproved  = "approved"
	ApprovalRejected  = "rejected"
	ApprovalExpired   = "expired"
	ApprovalCancelled = "cancelled"
)

// Approval is a request to grant a privileged role's access to an identity.
// Grants and Decisions are JSON owned by package workflows.
type Approval struct {
	ID          string
	IdentityID  string
	Role        string
	Grants      []byte // JSON
	Required    int    // distinct approvers needed
	State       string
	RequestedAt time.Time
	ExpiresAt   time.Time
	Decisions   []byte // JSON; nil when none
	Updated     time.Time
	Version     int64 // 1 on creation, +1 on every change
}

// ApprovalQuery selects approvals; empty fields do not filter.
type ApprovalQuery struct {
	State      string
	IdentityID string
}

// IdentityQuery pages through identities ordered by id.
type IdentityQuery struct {
	State string // "" for every state
	After string // id cursor: only ids greater than this
	Limit int    // > 0
}

// ReadTx reads from a consistent snapshot.
type ReadTx interface {
	// GetResource returns the live resource, or ErrNotFound.
	GetResource(ctx context.Context, typ, id string) (*Resource, error)
	// ListResources returns the page selected by q and the total number of
	// matches ignoring Offset/Limit.
	ListResources(ctx context.Context, q ListQuery) ([]*Resource, int, error)
	// ScanResources calls fn for every resource of type typ in creation
	// order; fn returning an error stops the scan and returns that error.
	ScanResources(ctx context.Context, typ string, fn func(*Resource) error) error
	// Members returns the members of a group ordered by value, with Display
	// filled. A missing group yields an empty list.
	Members(ctx context.Context, groupID string) ([]Member, error)
	// GroupsOf returns the groups that list id as a direct member, by id.
	GroupsOf(ctx context.Context, memberID string) ([]GroupRef, error)
	// GroupsOfEach is GroupsOf for many members in one round trip: the map
	// holds an entry for each id that belongs to at least one group.
	GroupsOfEach(ctx context.Context, memberIDs []string) (map[string][]GroupRef, error)
	// TokenByHash returns the token with that hash (revoked or not), or
	// ErrNotFound.
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// Tokens lists all tokens by name.
	Tokens(ctx context.Context) ([]*Token, error)
	// GetIdentity returns the identity with that id, or ErrNotFound.
	GetIdentity(ctx context.Context, id string) (*Identity, error)
	// ListIdentities returns at most q.Limit identities with id > q.After,
	// in id order, filtered by state when q.State is set.
	ListIdentities(ctx context.Context, q IdentityQuery) ([]*Identity, error)
	// DueIdentities returns at most limit identities whose NextCheck is set
	// and not after now, earliest first.
	DueIdentities(ctx context.Context, now time.Time, limit int) ([]*Identity, error)
	// GetException returns the exception with that id, or ErrNotFound.
	GetException(ctx context.Context, id string) (*Exception, error)
	// Exceptions lists exceptions by Created then ID; identityID "" lists
	// every identity's.
	Exceptions(ctx context.Context, identityID string) ([]*Exception, error)
	// GetApproval returns the approval with that id, or ErrNotFound.
	GetApproval(ctx context.Context, id string) (*Approval, error)
	// Approvals lists the approvals q selects, by RequestedAt then ID.
	Approvals(ctx context.Context, q ApprovalQuery) ([]*Approval, error)
	// GetTOTP returns the identity's TOTP enrollment, or ErrNotFound.
	GetTOTP(ctx context.Context, identityID string) (*TOTPEnrollment, error)
	// AuditFor returns the audit records about one resource (type and id),
	// in sequence order, with Seq >= fromSeq, at most limit (< 0: no cap).
	AuditFor(ctx context.Context, resourceType, resourceID string, fromSeq int64, limit int) ([]*AuditRecord, error)
	// Deliveries lists the deliveries q selects.
	Deliveries(ctx context.Context, q DeliveryQuery) ([]*Delivery, error)
	// HasDueDelivery reports whether connector has a pending delivery due
	// at now: the dispatcher's cheap check before it claims (a write). It
	// reads an index, never the whole queue.
	HasDueDelivery(ctx context.Context, connector string, now time.Time) (bool, error)
	// GetDelivery returns the delivery with that id, or ErrNotFound.
	GetDelivery(ctx context.Context, id int64) (*Delivery, error)
	// QueueStats returns the stats of every connector that has at least
	// one delivery, by connector name.
	QueueStats(ctx context.Context) (map[string]QueueStats, error)
	// Accounts returns the identity's accounts, by connector name.
	Accounts(ctx context.Context, identityID string) ([]*Account, error)
	// GetAccount returns one account, or ErrNotFound.
	GetAccount(ctx context.Context, identityID, connector string) (*Account, error)
	// ConnectorAccounts returns every account recorded for the connector,
	// by identity id.
	ConnectorAccounts(ctx context.Context, connector string) ([]*Account, error)
	// AuditHead returns the last audit record, or ErrNotFound on an empty
	// chain.
	AuditHead(ctx context.Context) (*AuditRecord, error)
	// AuditRange returns records with fromSeq <= Seq, in order, at most limit
	// (limit < 0: no cap).
	AuditRange(ctx context.Context, fromSeq int64, limit int) ([]*AuditRecord, error)
}

// Tx is a write transaction. It sees its own writes.
type Tx interface {
	ReadTx
	// CreateResource inserts r (Version, Created, LastModified as given).
	// ErrConflict if a live user has the same Name case-insensitively or the
	// id exists.
	CreateResource(ctx context.Context, r *Resource) error
	// UpdateResource replaces the stored resource with r, provided its
	// stored Version is r.Version-1; otherwise ErrConflict. ErrNotFound if
	// no resource of r.Type has r.ID; ErrConflict on a Name clash. The
	// resource keeps its place in creation order.
	UpdateResource(ctx context.Context, r *Resource) error
	// DeleteResource removes the resource and its memberships (both as a
	// group and as a member). ErrNotFound if absent.
	DeleteResource(ctx context.Context, typ, id string) error
	// AddMembers adds members to a group; members already present are left
	// as they are. ErrNotFound, and nothing added, if the group or any member
	// does not exist (or a member's non-empty Type is not its resource's
	// type). The stored Type is the member resource's.
	AddMembers(ctx context.Context, groupID string, members []Member) error
	// RemoveMembers removes the members with those values; absent ones are
	// ignored.
	RemoveMembers(ctx context.Context, groupID string, values []string) error
	// CreateToken inserts t; ErrConflict on a duplicate id, name or hash
	// (names of revoked tokens stay taken).
	CreateToken(ctx context.Context, t *Token) error
	// RevokeToken marks the named token revoked at the given time;
	// ErrNotFound if there is no unrevoked token with that name (expiry does
	// not matter).
	RevokeToken(ctx context.Context, name string, at time.Time) error
	// PutIdentity inserts id (Version 1, which must not exist yet) or
	// replaces it (Version n+1 over a stored version n). Any other version
	// is ErrConflict and writes nothing.
	PutIdentity(ctx context.Context, id *Identity) error
	// PutTOTP inserts e (Version 1, which must not exist yet) or replaces
	// it (Version n+1 over stored n); anything else is ErrConflict and
	// writes nothing. An enrollment needs an existing identity (ErrNotFound
	// otherwise).
	PutTOTP(ctx context.Context, e *TOTPEnrollment) error
	// CreateException inserts e (ErrConflict on a duplicate id; ErrNotFound
	// when the identity does not exist).
	CreateException(ctx context.Context, e *Exception) error
	// EndException sets Ended and EndedBy on a live exception; ErrNotFound
	// if there is none with that id, ErrConflict if it already ended.
	EndException(ctx context.Context, id string, at time.Time, by string) error
	// PutApproval inserts a (Version 1, which must not exist yet; the
	// identity must exist, else ErrNotFound) or replaces it (Version n+1
	// over stored n); anything else is ErrConflict and writes nothing.
	PutApproval(ctx context.Context, a *Approval) error
	// DeleteTOTP removes the identity's enrollment; none is not an error.
	DeleteTOTP(ctx context.Context, identityID string) error
	// EnqueueDelivery (ErrNotFound if the identity does not exist) makes
	// sure a pending delivery exists for the
	// identity and connector, due at now: if one is pending it is kept
	// (there is at most one pending delivery per pair), its priority
	// raised to priority if that is more urgent, and its RunAt brought
	// forward to now (a new change cuts a back-off short); otherwise one is
	// inserted with Attempts 0 and Enqueued now. A running or dead delivery
	// for the pair does not count: the new one runs after the running one
	// finishes. Returns the pending delivery's id.
	EnqueueDelivery(ctx context.Context, identityID, connector string, priority int, now time.Time) (int64, error)
	// ClaimDeliveries marks at most limit pending deliveries of connector
	// that are due at now as running (Attempts+1, Updated now) and returns
	// them, most urgent first (Priority, then RunAt, then ID). It skips
	// pairs that already have a running delivery, so one pair never runs
	// twice at once.
	ClaimDeliveries(ctx context.Context, connector string, now time.Time, limit int) ([]*Delivery, error)
	// FinishDelivery removes the running delivery id (it succeeded) and
	// any dead deliveries of the same pair, which the success resolved.
	// ErrNotFound if no running delivery has that id.
	FinishDelivery(ctx context.Context, id int64) error
	// FailDelivery returns running delivery id to pending at runAt, or,
	// with dead, marks it dead (RunAt kept); lastError is stored either
	// way. If a change enqueued a pending delivery for the pair while id
	// ran, the two merge into id: the more urgent priority, the older
	// Enqueued and the earlier RunAt win, and the other row is deleted.
	// ErrNotFound if no running delivery has that id.
	FailDelivery(ctx context.Context, id int64, runAt time.Time, dead bool, lastError string, now time.Time) error
	// RetryDelivery makes dead delivery id pending and due at now with
	// Attempts 0. If the pair already has a pending delivery, the dead one
	// is removed instead (the pending one covers it). ErrNotFound if no
	// dead delivery has that id.
	RetryDelivery(ctx context.Context, id int64, now time.Time) error
	// RequeueRunning makes every running delivery pending and due at now
	// (merging with a pending one of the same pair as FailDelivery does):
	// after a crash nothing is running. It returns how many it requeued.
	RequeueRunning(ctx context.Context, now time.Time) (int, error)
	// PutAccount inserts or replaces the account for (IdentityID,
	// Connector). Entitlements and Maybe are stored sorted and deduplicated.
	// ErrNotFound if the identity does not exist.
	PutAccount(ctx context.Context, a *Account) error
	// DeleteAccount removes the account; none is not an error.
	DeleteAccount(ctx context.Context, identityID, connector string) error
	// AppendAudit persists rec; ErrConflict if rec.Seq is taken.
	AppendAudit(ctx context.Context, rec *AuditRecord) error
	// RecordSETJTI records that the Security Event Token (RFC 8417) with
	// that jti from that issuer was accepted, so a replay can be refused
	// until expires (the end of the window in which the token's iat is
	// still acceptable). Issuer and jti compare exactly.
	//
	// ErrConflict, writing nothing and leaving tx usable, when the pair is
	// already recorded with an expiry not before the engine's current wall
	// clock time: a replay. A recorded pair whose expiry has passed counts
	// as absent and is replaced. The engine may also delete a few other
	// expired pairs in the same call, so the table stays the size of the
	// live replay window; it never deletes a pair that has not expired.
	// An empty issuer or jti, or an unstorable expires (including the zero
	// time), is a plain error.
	RecordSETJTI(ctx context.Context, issuer, jti string, expires time.Time) error
}

// Store is an open database.
type Store interface {
	// Update runs fn in a write transaction and commits if fn returns nil;
	// otherwise it rolls back and returns fn's error. Nothing fn wrote
	// survives a failure: an error, a panic (re-raised after the rollback)
	// or ctx ending before the commit (the error then wraps ctx.Err()).
	// Writers are serialised.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only snapshot: it sees only committed data, and
	// the same data for every read within fn.
	View(ctx context.Context, fn func(ReadTx) error) error
	// Lookup is ListResources for an uncapped query from offset 0 (Limit
	// < 0, Offset 0), run as ONE statement outside any transaction: a single
	// statement reads one consistent snapshot by itself, so this skips the
	// cost of a View for the hottest read (an IdP's userName lookup). Other
	// queries are refused with an error.
	Lookup(ctx context.Context, q ListQuery) ([]*Resource, error)
	// Migrate applies pending schema migrations; it is idempotent.
	Migrate(ctx context.Context) error
	// Ready returns nil when the database answers and every migration is
	// applied.
	Ready(ctx context.Context) error
	Close() error
}
