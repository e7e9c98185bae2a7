// Package scim is the outbound SCIM 2.0 connector (RFC 7643, RFC 7644):
// the universal SaaS connector, for targets that are SCIM service
// providers (Slack, GitHub Enterprise, Zoom, Atlassian, jmlgate itself).
//
// Accounts are SCIM Users. jmlgate marks the accounts it manages by their
// externalId, which it sets to the identity's id: EnsureAccount finds an
// account by userName, then by externalId, creates it when neither matches
// (with externalId set), and re-enables it with a PATCH of active. An
// account with the userName but no externalId was made by someone else;
// taking it over is opt-in (adopt_existing), because whoever made it may
// hold its credentials: without the option it is a Conflict, with it the
// account is adopted and its externalId set. The ref is the SCIM id.
// Entitlements are "group:<displayName>": Grant and Revoke PATCH the
// group's members; group ids are cached for five minutes. The connector is
// a connectors.Lister (it pages through /Users and /Groups, and lists only
// the users that carry an externalId, so reconciliation never disables an
// account jmlgate does not manage), a connectors.Finder (FindAccount looks
// an account up as EnsureAccount does, with GETs only) but not a
// connectors.SessionRevoker:
// SCIM has no standard way to end a user's sessions, so leavers' sessions
// end only as the target itself ends them for a deactivated user.
//
// Every request carries Content-Type and Accept application/scim+json and
// a bearer token (configured, or from an OAuth 2.0 client-credentials
// grant), has its own timeout (timeout, default 10s) inside the caller's
// context, and reads at most 4 MiB of response. Failures are classified
// with connectors.HTTPError and connectors.Transport: 429 and 5xx are
// Retryable (honouring Retry-After), 409 Conflict, other 4xx Permanent;
// network errors are Retryable, certificate errors Permanent, and context
// errors wrap context.Canceled or context.DeadlineExceeded. Redirects are
// not followed.
//
// A 404 (or 410) is NotFound, which DisableAccount and Revoke take for
// "already gone", only when it answers a request on one resource
// (/Users/{id}, /Groups/{id}) with a SCIM error body. From a list or
// search (/Users?filter=…), or with another body (an ingress's HTML page),
// it is Permanent: the URL is wrong, and a revocation must not succeed
// without reaching the target. For the same reason a lookup concludes
// "absent" only from a real ListResponse whose entries all match the
// filter; a target that ignores the filter is a Permanent error.
//
// Error messages never hold a credential: the answer's body is redacted of
// the token, the client secret and the access tokens (connectors.Redact)
// before it is quoted, and so is every error the methods return.
package scim

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmlgate/jmlgate/connectors"
)

const (
	userSchema  = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupSchema = "urn:ietf:params:scim:schemas:core:2.0:Group"
	patchSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

	// groupPrefix is the only entitlement form this connector knows.
	groupPrefix = "group:"

	// groupTTL is how long a group's displayName → id mapping is
	// trusted: a group renamed on the target (and another given its old
	// name) is seen at the latest this long after.
	groupTTL = 5 * time.Minute
)

// Conn is a SCIM target. Safe for concurrent use.
type Conn struct {
	name         string
	base         string // base_url without a trailing slash
	client       *http.Client
	auth         authenticator
	log          *slog.Logger
	timeout      time.Duration
	pageSize     int
	createGroups bool
	adopt        bool // adopt_existing
	now          func() time.Time

	mu     sync.Mutex
	groups map[string]cachedGroup // displayName → SCIM id, dropped on 404 or after groupTTL
	// createMu serialises group creation so that two grants of a new
	// group do not create it twice on targets that allow duplicate names.
	// It is a one-slot channel so that a waiter can give up with its ctx.
	createMu chan struct{}
}

// cachedGroup is a group id and when it was looked up.
type cachedGroup struct {
	id string
	at time.Time
}

var (
	_ connectors.Connector = (*Conn)(nil)
	_ connectors.Lister    = (*Conn)(nil)
	_ connectors.Finder    = (*Conn)(nil)
	_ fmt.Formatter        = (*Conn)(nil)
	_ slog.LogValuer       = (*Conn)(nil)
)

// String names the connector and its base_url (which holds no
// credential: Open refuses user info and queries).
func (c *Conn) String() string { return "scim " + c.name + " " + c.base }

// GoString is String, so %#v shows no field.
func (c *Conn) GoString() string { return c.String() }

// Format prints String whatever the verb (%v, %+v, %#v, %s, %q …): no
// field of the connector, credentials included, is ever printed.
func (c *Conn) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue logs the connector's type, name and base_url only.
func (c *Conn) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", "scim"), slog.String("name", c.name), slog.String("base_url", c.base))
}

// redact returns err with every credential of the connector, and extra,
// taken out of its message (connectors.RedactError: class and
// Retry-After are kept). A *statusError stays one, so that callers can
// still read the status.
func (c *Conn) redact(err error, extra ...string) error {
	if err == nil {
		return nil
	}
	secrets := append(c.auth.secrets(), extra...)
	if se, ok := err.(*statusError); ok {
		return &statusError{status: se.status, scimType: se.scimType, err: connectors.RedactError(se.err, secrets...)}
	}
	return connectors.RedactError(err, secrets...)
}

// checkID refuses an id (from the target, or a ref jmlgate stored) that
// cannot name one resource in a URL path: empty, "." or "..", which a
// proxy or server would resolve to the collection or its parent.
func checkID(what, id string) error {
	if id == "" || id == "." || id == ".." {
		return connectors.Errorf(connectors.Permanent, "%s %q cannot name a SCIM resource", what, id)
	}
	return nil
}

// user is the part of a SCIM User the connector reads.
type user struct {
	ID         string    `json:"id"`
	UserName   string    `json:"userName"`
	ExternalID string    `json:"externalId"`
	Active     *flexBool `json:"active"`
}

// enabled reads active; a target that does not report it has no disabled
// state to show, so its users count as enabled.
func (u *user) enabled() bool { return u.Active == nil || bool(*u.Active) }

type member struct {
	Value string `json:"value"`
	Type  string `json:"type,omitempty"`
}

type group struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Members     []member `json:"members"`
}

type patchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

type patchRequest struct {
	Schemas    []string         `json:"schemas"`
	Operations []patchOperation `json:"Operations"`
}

func patch(ops ...patchOperation) patchRequest {
	return patchRequest{Schemas: []string{patchSchema}, Operations: ops}
}

// EnsureAccount returns the SCIM id of a's enabled account. It looks the
// account up by userName (the one whose externalId is a.IdentityID), then
// by externalId, so a renamed account is found again. An account found by
// userName whose externalId names another identity is a Conflict (a
// userName reused by someone else). One with no externalId was not made by
// jmlgate: without adopt_existing that is a Conflict (whoever made it may
// hold its credentials); with it, the account is adopted and its
// externalId set to a.IdentityID, so that it is managed from then on. An
// account found inactive is re-enabled; adoption and re-enabling are one
// PATCH (other attributes are left as the target has them). When nothing
// matches the account is created (POST /Users, active, externalId =
// a.IdentityID); a 409 on creation means a concurrent creation won, and
// the lookup runs once more. An account without IdentityID is Permanent:
// its externalId is what marks it as jmlgate's. A target whose lookups
// ignore the filter is Permanent (see the package documentation).
// Idempotent; each step is one atomic request on the target.
func (c *Conn) EnsureAccount(ctx context.Context, a connectors.Account) (string, error) {
	ref, err := c.ensureAccount(ctx, a)
	return ref, c.redact(err)
}

func (c *Conn) ensureAccount(ctx context.Context, a connectors.Account) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", ctxError("EnsureAccount", err)
	}
	if a.UserName == "" {
		return "", connectors.Errorf(connectors.Permanent, "EnsureAccount: the account has no userName")
	}
	if a.IdentityID == "" {
		return "", connectors.Errorf(connectors.Permanent,
			"EnsureAccount %q: the account has no identity id (the externalId that marks an account as jmlgate's)", a.UserName)
	}
	u, adopt, err := c.lookup(ctx, a)
	if err != nil {
		return "", err
	}
	if u == nil {
		id, err := c.createUser(ctx, a)
		if err == nil {
			return id, nil
		}
		if status, _ := statusOf(err); status != http.StatusConflict {
			return "", err
		}
		if u, adopt, err = c.lookup(ctx, a); err != nil {
			return "", err
		}
		if u == nil {
			return "", connectors.Errorf(connectors.Conflict,
				"EnsureAccount: target refused to create userName %q (409) and no account matches it or externalId %q",
				a.UserName, a.IdentityID)
		}
	}
	var ops []patchOperation
	if adopt {
		ops = append(ops, patchOperation{Op: "replace", Path: "externalId", Value: a.IdentityID})
	}
	if !u.enabled() {
		ops = append(ops, patchOperation{Op: "replace", Path: "active", Value: true})
	}
	if len(ops) == 0 {
		return u.ID, nil
	}
	err = c.do(ctx, request{method: http.MethodPatch, path: "/Users/" + pathEscape(u.ID), body: patch(ops...)}, nil)
	if connectors.IsNotFound(err) {
		// Deleted between the lookup and the PATCH: the next try
		// creates it afresh.
		return "", connectors.Errorf(connectors.Retryable, "EnsureAccount: account %s vanished while being updated: %w", u.ID, err)
	}
	if err != nil {
		return "", err
	}
	if adopt {
		c.log.InfoContext(ctx, "scim connector: adopted an existing account (adopt_existing) and set its externalId",
			"connector", c.name, "ref", u.ID, "user_name", u.UserName, "identity_id", a.IdentityID)
	}
	return u.ID, nil
}

// lookup finds a's account: by userName when its externalId is
// a.IdentityID, else by externalId, else the userName match when it has
// no externalId and adopt_existing is set (adopt is then true). nil: none.
// A userName match that is not a's (another identity's, or unmarked
// without adopt_existing) is a Conflict.
func (c *Conn) lookup(ctx context.Context, a connectors.Account) (u *user, adopt bool, err error) {
	u, adopt, refused, err := c.match(ctx, a)
	if err == nil && refused != nil {
		return nil, false, refused
	}
	return u, adopt, err
}

// match is lookup, with the Conflict for a userName match that is not
// a's returned as refused (u is then nil) rather than as err, so that
// FindAccount can report such an account as not found.
func (c *Conn) match(ctx context.Context, a connectors.Account) (u *user, adopt bool, refused, err error) {
	byName, err := c.findUser(ctx, "userName", a.UserName)
	if err != nil {
		return nil, false, nil, err
	}
	if byName != nil && byName.ExternalID == a.IdentityID {
		return byName, false, nil, nil
	}
	byID, err := c.findUser(ctx, "externalId", a.IdentityID)
	if err != nil {
		return nil, false, nil, err
	}
	switch {
	case byID != nil:
		return byID, false, nil, nil
	case byName == nil:
		return nil, false, nil, nil
	case byName.ExternalID != "":
		return nil, false, connectors.Errorf(connectors.Conflict,
			"EnsureAccount: userName %q is taken by account %s of another identity (externalId %q)",
			a.UserName, byName.ID, byName.ExternalID), nil
	case !c.adopt:
		return nil, false, connectors.Errorf(connectors.Conflict,
			"EnsureAccount: an account with this userName (%q, id %s) exists but was not created by jmlgate; set adopt_existing to take it over",
			a.UserName, byName.ID), nil
	}
	return byName, true, nil, nil
}

// FindAccount returns the SCIM id of a's account, found as EnsureAccount
// finds it (see lookup), with GET requests only: nothing is created,
// adopted or re-enabled. found is false, with a nil error, when no account
// matches, and also when the only match is a userName taken by another
// identity's account or by an account without externalId while
// adopt_existing is off: EnsureAccount would not have taken those, so they
// are not a's. With adopt_existing on, an account with a's userName and no
// externalId is found (EnsureAccount adopts it). Errors: Permanent for an
// account without userName or identity id, or a target that ignores the
// filter; Conflict when several accounts match; otherwise those of the
// failing request, context errors wrapped.
func (c *Conn) FindAccount(ctx context.Context, a connectors.Account) (ref string, found bool, err error) {
	ref, found, err = c.findAccount(ctx, a)
	return ref, found, c.redact(err)
}

func (c *Conn) findAccount(ctx context.Context, a connectors.Account) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, ctxError("FindAccount", err)
	}
	if a.UserName == "" {
		return "", false, connectors.Errorf(connectors.Permanent, "FindAccount: the account has no userName")
	}
	if a.IdentityID == "" {
		return "", false, connectors.Errorf(connectors.Permanent,
			"FindAccount %q: the account has no identity id (the externalId that marks an account as jmlgate's)", a.UserName)
	}
	u, _, refused, err := c.match(ctx, a)
	if err != nil {
		return "", false, err
	}
	if refused != nil || u == nil {
		return "", false, nil
	}
	return u.ID, true, nil
}

// findUser returns the user whose attr (userName or externalId) equals
// value, or nil when the target's ListResponse holds none. An entry that
// does not match the filter, or more results than the page holds, means
// the target ignores the filter: Permanent, since concluding "absent"
// from it could create a duplicate or adopt the wrong account. Several
// matches (userName differing only in case, a shared externalId) are a
// Conflict unless exactly one matches userName exactly.
func (c *Conn) findUser(ctx context.Context, attr, value string) (*user, error) {
	var page listResponse[user]
	filter := eqFilter(attr, value)
	if err := list(ctx, c, "/Users", url.Values{"filter": {filter}}, &page); err != nil {
		return nil, err
	}
	op := "GET /Users?filter=" + filter
	if n := page.total(); n > len(page.Resources) {
		return nil, connectors.Errorf(connectors.Permanent,
			"%s: target ignores filter: totalResults %d but %d resources for an eq lookup", op, n, len(page.Resources))
	}
	var exact, folded []*user
	for i := range page.Resources {
		u := &page.Resources[i]
		got := u.ExternalID // externalId is caseExact
		if attr == "userName" {
			got = u.UserName
		}
		switch {
		case got == value:
			exact = append(exact, u)
		case attr == "userName" && strings.EqualFold(got, value): // userName is not caseExact
			folded = append(folded, u)
		default:
			return nil, connectors.Errorf(connectors.Permanent,
				"%s: target ignores filter: it answered %s %q", op, attr, got)
		}
		if err := checkID(op+": user id", u.ID); err != nil {
			return nil, err
		}
	}
	switch {
	case len(exact) == 1:
		return exact[0], nil
	case len(exact) == 0 && len(folded) == 1:
		return folded[0], nil
	case len(exact) == 0 && len(folded) == 0:
		return nil, nil
	}
	return nil, connectors.Errorf(connectors.Conflict,
		"%s: %d accounts match; jmlgate cannot tell which one is this identity's", op, len(exact)+len(folded))
}

func (c *Conn) createUser(ctx context.Context, a connectors.Account) (string, error) {
	body := map[string]any{
		"schemas":    []string{userSchema},
		"userName":   a.UserName,
		"externalId": a.IdentityID,
		"active":     true,
	}
	name := map[string]string{}
	if a.GivenName != "" {
		name["givenName"] = a.GivenName
	}
	if a.FamilyName != "" {
		name["familyName"] = a.FamilyName
	}
	if len(name) > 0 {
		body["name"] = name
	}
	if a.DisplayName != "" {
		body["displayName"] = a.DisplayName
	}
	if a.Email != "" {
		body["emails"] = []map[string]any{{"value": a.Email, "type": "work", "primary": true}}
	}
	var created user
	if err := c.do(ctx, request{method: http.MethodPost, path: "/Users", body: body}, &created); err != nil {
		return "", err
	}
	if err := checkID("POST /Users: the target returned id", created.ID); err != nil {
		return "", err
	}
	if created.UserName != "" && created.ExternalID != a.IdentityID {
		// A full representation without our externalId: the target does
		// not keep it, so the account will not be found as jmlgate's
		// again (EnsureAccount conflicts, ListAccounts leaves it out).
		c.log.WarnContext(ctx, "scim connector: the target did not store the externalId of a created user; "+
			"it cannot be recognised as jmlgate's (EnsureAccount will conflict unless adopt_existing is set, and ListAccounts leaves it out)",
			"connector", c.name, "ref", created.ID)
	}
	return created.ID, nil
}

// DisableAccount sets active to false with one PATCH. A missing account
// is already disabled: nil. The target's 404 is believed only when it is
// a SCIM error and a GET /Users (one entry) answers a ListResponse, so a
// base_url that points somewhere else fails (Permanent) instead of
// reporting every leaver disabled. Idempotent.
func (c *Conn) DisableAccount(ctx context.Context, ref string) error {
	return c.redact(c.disableAccount(ctx, ref))
}

func (c *Conn) disableAccount(ctx context.Context, ref string) error {
	if err := ctx.Err(); err != nil {
		return ctxError("DisableAccount", err)
	}
	if err := checkID("DisableAccount: ref", ref); err != nil {
		return err
	}
	err := c.do(ctx, request{method: http.MethodPatch, path: "/Users/" + pathEscape(ref),
		body: patch(patchOperation{Op: "replace", Path: "active", Value: false})}, nil)
	if !connectors.IsNotFound(err) {
		return err
	}
	var page listResponse[user]
	q := url.Values{"startIndex": {"1"}, "count": {"1"}, "attributes": {"id"}}
	if err := list(ctx, c, "/Users", q, &page); err != nil {
		return fmt.Errorf("DisableAccount %s: the target answered 404; confirming that base_url serves /Users failed: %w", ref, err)
	}
	return nil
}

// Grant adds ref to the members of the group the entitlement names, with
// one PATCH (add members), which SCIM defines as a no-op for a member
// already present. A group missing from the target is created first when
// create_groups is set and is otherwise a Permanent error naming it. An
// account that does not exist is NotFound (the dispatcher ensures it
// again); an entitlement that is not "group:<name>" is Permanent.
func (c *Conn) Grant(ctx context.Context, ref, entitlement string) error {
	return c.redact(c.grant(ctx, ref, entitlement))
}

func (c *Conn) grant(ctx context.Context, ref, entitlement string) error {
	if err := ctx.Err(); err != nil {
		return ctxError("Grant", err)
	}
	name, err := groupName(entitlement, ref)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		gid, err := c.groupID(ctx, name, c.createGroups)
		if err != nil {
			return err
		}
		if gid == "" {
			return connectors.Errorf(connectors.Permanent,
				"Grant %s: group %q does not exist in the target (create it there, or set create_groups: true)", entitlement, name)
		}
		err = c.do(ctx, request{method: http.MethodPatch, path: "/Groups/" + pathEscape(gid),
			body: patch(patchOperation{Op: "add", Path: "members", Value: []member{{Value: ref}}})}, nil)
		missing := connectors.IsNotFound(err)
		switch status, _ := statusOf(err); {
		case missing && attempt == 0:
			// The cached group was deleted (and maybe recreated).
			c.forgetGroup(name, gid)
			continue
		case status == http.StatusBadRequest || missing:
			// Targets refuse an unknown member with 400 (some with 404);
			// tell the dispatcher the ref is stale rather than
			// dead-lettering the grant.
			if gone, _ := c.userMissing(ctx, ref); gone {
				return connectors.Errorf(connectors.NotFound, "Grant %s: account %s does not exist: %w", entitlement, ref, err)
			}
			if missing {
				// The group vanished twice in a row: not a stale ref.
				return connectors.Errorf(connectors.Retryable, "Grant %s: group %q keeps disappearing: %w", entitlement, name, err)
			}
		}
		return err
	}
}

// Revoke removes ref from the group's members with one PATCH (remove
// members[value eq "ref"]). A missing group (an empty ListResponse for
// its displayName, or a SCIM 404 for its id), a missing member and a
// missing account are all success. An entitlement that is not
// "group:<name>" is Permanent. Idempotent.
func (c *Conn) Revoke(ctx context.Context, ref, entitlement string) error {
	return c.redact(c.revoke(ctx, ref, entitlement))
}

func (c *Conn) revoke(ctx context.Context, ref, entitlement string) error {
	if err := ctx.Err(); err != nil {
		return ctxError("Revoke", err)
	}
	name, err := groupName(entitlement, ref)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		gid, err := c.groupID(ctx, name, false)
		if err != nil || gid == "" {
			return err
		}
		err = c.do(ctx, request{method: http.MethodPatch, path: "/Groups/" + pathEscape(gid),
			body: patch(patchOperation{Op: "remove", Path: "members[value eq " + quote(ref) + "]"})}, nil)
		switch status, scimType := statusOf(err); {
		case connectors.IsNotFound(err) && attempt == 0:
			// Look the group up again (through /Groups, which also
			// proves the endpoint is right).
			c.forgetGroup(name, gid)
			continue
		case connectors.IsNotFound(err):
			return nil // deleted again while we looked
		case status == http.StatusBadRequest && scimType == "noTarget":
			// RFC 7644 Table 9: "a filter that yields no match": the
			// member is already gone.
			return nil
		}
		return err
	}
}

// userMissing reports whether GET /Users/ref answers a SCIM 404.
func (c *Conn) userMissing(ctx context.Context, ref string) (bool, error) {
	var u user
	err := c.do(ctx, request{method: http.MethodGet, path: "/Users/" + pathEscape(ref),
		query: url.Values{"attributes": {"userName"}}}, &u)
	return connectors.IsNotFound(err), err
}

func groupName(entitlement, ref string) (string, error) {
	name, ok := strings.CutPrefix(entitlement, groupPrefix)
	if !ok {
		return "", connectors.Errorf(connectors.Permanent,
			"entitlement %q: the SCIM connector knows only \"group:<displayName>\"", entitlement)
	}
	if name == "" {
		return "", connectors.Errorf(connectors.Permanent, "entitlement %q: empty group name", entitlement)
	}
	if ref == "" {
		return "", connectors.Errorf(connectors.Permanent, "entitlement %q: empty ref", entitlement)
	}
	if err := checkID(fmt.Sprintf("entitlement %q: ref", entitlement), ref); err != nil {
		return "", err
	}
	return name, nil
}

// groupID returns the id of the group called name, from the cache (at
// most groupTTL old) or the target; "" when the target has none and create
// is false.
func (c *Conn) groupID(ctx context.Context, name string, create bool) (string, error) {
	if id, ok := c.cachedGroupID(name); ok {
		return id, nil
	}
	id, err := c.findGroup(ctx, name)
	if err != nil || id != "" || !create {
		return id, err
	}
	select {
	case c.createMu <- struct{}{}:
		defer func() { <-c.createMu }()
	case <-ctx.Done():
		return "", ctxError("create group", ctx.Err())
	}
	// Another grant may have created it while this one waited.
	if id, err = c.findGroup(ctx, name); err != nil || id != "" {
		return id, err
	}
	var created group
	err = c.do(ctx, request{method: http.MethodPost, path: "/Groups",
		body: map[string]any{"schemas": []string{groupSchema}, "displayName": name}}, &created)
	if status, _ := statusOf(err); status == http.StatusConflict {
		// Created by someone else (another gateway replica).
		return c.findGroup(ctx, name)
	}
	if err != nil {
		return "", err
	}
	if err := checkID("POST /Groups: the target returned id", created.ID); err != nil {
		return "", err
	}
	c.log.InfoContext(ctx, "scim connector: created group", "connector", c.name, "group", name, "id", created.ID)
	c.rememberGroup(name, created.ID)
	return created.ID, nil
}

// findGroup looks the group up by displayName and caches its id. An exact
// match wins over one differing only in case (displayName is not
// caseExact, and some targets allow both). An entry whose displayName does
// not match, or more results than the page holds, means the target ignores
// the filter: Permanent, since Revoke would otherwise conclude the group
// is absent and report the entitlement gone.
func (c *Conn) findGroup(ctx context.Context, name string) (string, error) {
	var page listResponse[group]
	filter := eqFilter("displayName", name)
	q := url.Values{"filter": {filter}, "attributes": {"displayName"}}
	if err := list(ctx, c, "/Groups", q, &page); err != nil {
		return "", err
	}
	op := "GET /Groups?filter=" + filter
	if n := page.total(); n > len(page.Resources) {
		return "", connectors.Errorf(connectors.Permanent,
			"%s: target ignores filter: totalResults %d but %d resources for an eq lookup", op, n, len(page.Resources))
	}
	id := ""
	for _, g := range page.Resources {
		if !strings.EqualFold(g.DisplayName, name) {
			return "", connectors.Errorf(connectors.Permanent, "%s: target ignores filter: it answered displayName %q", op, g.DisplayName)
		}
		if err := checkID(op+": group id", g.ID); err != nil {
			return "", err
		}
	}
	for _, g := range page.Resources {
		if g.DisplayName == name {
			id = g.ID
			break
		}
		if id == "" {
			id = g.ID
		}
	}
	if id != "" {
		c.rememberGroup(name, id)
	}
	return id, nil
}

// cachedGroupID returns the cached id of name if it is younger than
// groupTTL.
func (c *Conn) cachedGroupID(name string) (string, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.groups[name]
	if !ok || !now.Before(e.at.Add(groupTTL)) {
		return "", false
	}
	return e.id, true
}

func (c *Conn) rememberGroup(name, id string) {
	now := c.now()
	c.mu.Lock()
	c.groups[name] = cachedGroup{id: id, at: now}
	c.mu.Unlock()
}

// forgetGroup drops name from the cache if it still maps to id.
func (c *Conn) forgetGroup(name, id string) {
	c.mu.Lock()
	if c.groups[name].id == id {
		delete(c.groups, name)
	}
	c.mu.Unlock()
}

// ListAccounts pages through /Users and then /Groups (with members),
// page_size resources a page, and returns the accounts jmlgate manages —
// the users whose externalId is set (jmlgate sets it to the identity's id
// on creation and on adoption) — with the groups each is a direct member
// of as "group:<displayName>", sorted; the accounts are sorted by
// userName. Users without an externalId were not made by jmlgate and are
// left out, so that reconciliation (drift: revoke) never disables them.
// It is not a snapshot: changes made while it pages may or may not show.
// Errors are those of the failing request, or Permanent for a user or
// group id that cannot name a resource ("", ".", ".."); nothing partial
// is returned.
func (c *Conn) ListAccounts(ctx context.Context) ([]connectors.AccountState, error) {
	out, err := c.listAccounts(ctx)
	return out, c.redact(err)
}

func (c *Conn) listAccounts(ctx context.Context) ([]connectors.AccountState, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError("ListAccounts", err)
	}
	var out []connectors.AccountState
	index := map[string]int{}
	var bad error
	err := pages(ctx, c, "/Users", url.Values{"attributes": {"userName,externalId,active"}}, func(u user) {
		if u.ExternalID == "" || bad != nil {
			return // not managed by jmlgate
		}
		if bad = checkID("GET /Users: user id", u.ID); bad != nil {
			return
		}
		if _, dup := index[u.ID]; dup { // a page boundary shifted under us
			return
		}
		index[u.ID] = len(out)
		out = append(out, connectors.AccountState{Ref: u.ID, UserName: u.UserName, IdentityID: u.ExternalID, Enabled: u.enabled()})
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	err = pages(ctx, c, "/Groups", url.Values{"attributes": {"displayName,members"}}, func(g group) {
		if g.ID == "" || g.DisplayName == "" || bad != nil {
			return
		}
		if bad = checkID("GET /Groups: group id", g.ID); bad != nil {
			return
		}
		c.rememberGroup(g.DisplayName, g.ID)
		for _, m := range g.Members {
			if strings.EqualFold(m.Type, "Group") {
				continue
			}
			if i, ok := index[m.Value]; ok {
				out[i].Entitlements = append(out[i].Entitlements, groupPrefix+g.DisplayName)
			}
		}
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	for i := range out {
		slices.Sort(out[i].Entitlements)
		out[i].Entitlements = slices.Compact(out[i].Entitlements)
	}
	slices.SortStableFunc(out, func(a, b connectors.AccountState) int { return cmp.Compare(a.UserName, b.UserName) })
	return out, nil
}

// pages calls fn for every resource of a paged list (RFC 7644 section
// 3.4.2.4). It stops at totalResults or at an empty page, whichever comes
// first, so a target that ignores startIndex cannot make it loop forever.
func pages[T any](ctx context.Context, c *Conn, path string, query url.Values, fn func(T)) error {
	start := 1
	for range maxPages {
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(c.pageSize)}}
		for k, v := range query {
			q[k] = v
		}
		var page listResponse[T]
		if err := list(ctx, c, path, q, &page); err != nil {
			return err
		}
		for _, r := range page.Resources {
			fn(r)
		}
		n := len(page.Resources)
		start += n
		total := 0
		if page.TotalResults != nil {
			total = *page.TotalResults
		}
		if n == 0 || (total > 0 && start > total) || (total == 0 && n < c.pageSize) {
			return nil
		}
	}
	return connectors.Errorf(connectors.Permanent, "GET %s: still paging after %d pages; does the target honour startIndex?", path, maxPages)
}

// maxPages bounds a listing against a target whose paging never ends.
const maxPages = 100_000

// ctxError wraps a context error so that errors.Is finds it (and ClassOf
// says Retryable: the job was interrupted, not refused).
func ctxError(op string, err error) error { return fmt.Errorf("%s: %w", op, err) }
