// Package scim is the outbound SCIM 2.0 connector (RFC 7643, RFC 7644):
// the universal SaaS connector, for targets that are SCIM service
// providers (Slack, GitHub Enterprise, Zoom, Atlassian, jmlgate itself).
//
// Accounts are SCIM Users: EnsureAccount finds one by userName, then by
// externalId (where jmlgate stores the identity's id), creates it when
// neither matches, and re-enables it with a PATCH of active. The ref is the
// SCIM id. Entitlements are "group:<displayName>": Grant and Revoke PATCH
// the group's members. The connector is a connectors.Lister (it pages
// through /Users and /Groups) but not a connectors.SessionRevoker: SCIM has
// no standard way to end a user's sessions, so leavers' sessions end only
// as the target itself ends them for a deactivated user.
//
// Every request carries Content-Type and Accept application/scim+json and
// a bearer token (configured, or from an OAuth 2.0 client-credentials
// grant), has its own timeout (timeout, default 10s) inside the caller's
// context, and reads at most 4 MiB of response. Failures are classified
// with connectors.HTTPError and connectors.Transport: 429 and 5xx are
// Retryable (honouring Retry-After), 404 NotFound, 409 Conflict, other
// 4xx Permanent; network errors are Retryable, certificate errors
// Permanent, and context errors wrap context.Canceled or
// context.DeadlineExceeded. Redirects are not followed.
package scim

import (
	"cmp"
	"context"
	"fmt"
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
	now          func() time.Time

	mu     sync.Mutex
	groups map[string]string // displayName → SCIM id, dropped on 404
	// createMu serialises group creation so that two grants of a new
	// group do not create it twice on targets that allow duplicate names.
	// It is a one-slot channel so that a waiter can give up with its ctx.
	createMu chan struct{}
}

var (
	_ connectors.Connector = (*Conn)(nil)
	_ connectors.Lister    = (*Conn)(nil)
)

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
// account up by userName, then by externalId (= a.IdentityID); an account
// found by userName whose externalId names another identity is not
// adopted: that is a Conflict (a userName reused by someone else). An
// account found inactive is re-enabled by a PATCH of active (other
// attributes are left as the target has them). When nothing matches the
// account is created (POST /Users, active, externalId = a.IdentityID); a
// 409 on creation means a concurrent creation won, and the lookup runs
// once more. Idempotent; each step is one atomic request on the target.
func (c *Conn) EnsureAccount(ctx context.Context, a connectors.Account) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", ctxError("EnsureAccount", err)
	}
	if a.UserName == "" {
		return "", connectors.Errorf(connectors.Permanent, "EnsureAccount: the account has no userName")
	}
	u, err := c.lookup(ctx, a)
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
		if u, err = c.lookup(ctx, a); err != nil {
			return "", err
		}
		if u == nil {
			return "", connectors.Errorf(connectors.Conflict,
				"EnsureAccount: target refused to create userName %q (409) and no account matches it or externalId %q",
				a.UserName, a.IdentityID)
		}
	}
	if !u.enabled() {
		err := c.do(ctx, request{method: http.MethodPatch, path: "/Users/" + pathEscape(u.ID),
			body: patch(patchOperation{Op: "replace", Path: "active", Value: true})}, nil)
		if connectors.IsNotFound(err) {
			// Deleted between the lookup and the PATCH: the next try
			// creates it afresh.
			return "", connectors.Errorf(connectors.Retryable, "EnsureAccount: account %s vanished while being re-enabled: %w", u.ID, err)
		}
		if err != nil {
			return "", err
		}
	}
	return u.ID, nil
}

// lookup finds a's account by userName, then by externalId. nil: none.
func (c *Conn) lookup(ctx context.Context, a connectors.Account) (*user, error) {
	byName, err := c.findUser(ctx, "userName", a.UserName)
	if err != nil {
		return nil, err
	}
	if byName != nil && (byName.ExternalID == "" || byName.ExternalID == a.IdentityID) {
		return byName, nil
	}
	if a.IdentityID != "" {
		byID, err := c.findUser(ctx, "externalId", a.IdentityID)
		if err != nil {
			return nil, err
		}
		if byID != nil {
			return byID, nil
		}
	}
	if byName != nil {
		return nil, connectors.Errorf(connectors.Conflict,
			"EnsureAccount: userName %q is taken by account %s of another identity (externalId %q)",
			a.UserName, byName.ID, byName.ExternalID)
	}
	return nil, nil
}

// findUser returns the user whose attr equals value, or nil. Results that
// do not match are ignored, in case a target ignores the filter.
func (c *Conn) findUser(ctx context.Context, attr, value string) (*user, error) {
	var page listResponse[user]
	q := url.Values{"filter": {eqFilter(attr, value)}}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/Users", query: q}, &page); err != nil {
		return nil, err
	}
	for i := range page.Resources {
		u := &page.Resources[i]
		match := u.ExternalID == value // externalId is caseExact
		if attr == "userName" {
			match = strings.EqualFold(u.UserName, value) // userName is not
		}
		if match && u.ID != "" {
			return u, nil
		}
	}
	return nil, nil
}

func (c *Conn) createUser(ctx context.Context, a connectors.Account) (string, error) {
	body := map[string]any{
		"schemas":  []string{userSchema},
		"userName": a.UserName,
		"active":   true,
	}
	if a.IdentityID != "" {
		body["externalId"] = a.IdentityID
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
	if created.ID == "" {
		return "", connectors.Errorf(connectors.Permanent, "POST /Users: the target returned no id")
	}
	return created.ID, nil
}

// DisableAccount sets active to false with one PATCH. A missing account
// (404) is already disabled: nil. Idempotent.
func (c *Conn) DisableAccount(ctx context.Context, ref string) error {
	if err := ctx.Err(); err != nil {
		return ctxError("DisableAccount", err)
	}
	if ref == "" {
		return connectors.Errorf(connectors.Permanent, "DisableAccount: empty ref")
	}
	err := c.do(ctx, request{method: http.MethodPatch, path: "/Users/" + pathEscape(ref),
		body: patch(patchOperation{Op: "replace", Path: "active", Value: false})}, nil)
	if connectors.IsNotFound(err) {
		return nil
	}
	return err
}

// Grant adds ref to the members of the group the entitlement names, with
// one PATCH (add members), which SCIM defines as a no-op for a member
// already present. A group missing from the target is created first when
// create_groups is set and is otherwise a Permanent error naming it. An
// account that does not exist is NotFound (the dispatcher ensures it
// again); an entitlement that is not "group:<name>" is Permanent.
func (c *Conn) Grant(ctx context.Context, ref, entitlement string) error {
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
		switch status, _ := statusOf(err); {
		case status == http.StatusNotFound && attempt == 0:
			// The cached group was deleted (and maybe recreated).
			c.forgetGroup(name, gid)
			continue
		case status == http.StatusBadRequest || status == http.StatusNotFound:
			// Targets refuse an unknown member with 400 (some with 404);
			// tell the dispatcher the ref is stale rather than
			// dead-lettering the grant.
			if gone, _ := c.userMissing(ctx, ref); gone {
				return connectors.Errorf(connectors.NotFound, "Grant %s: account %s does not exist: %w", entitlement, ref, err)
			}
			if status == http.StatusNotFound {
				// The group vanished twice in a row: not a stale ref.
				return connectors.Errorf(connectors.Retryable, "Grant %s: group %q keeps disappearing: %w", entitlement, name, err)
			}
		}
		return err
	}
}

// Revoke removes ref from the group's members with one PATCH (remove
// members[value eq "ref"]). A missing group, a missing member and a
// missing account are all success. An entitlement that is not
// "group:<name>" is Permanent. Idempotent.
func (c *Conn) Revoke(ctx context.Context, ref, entitlement string) error {
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
		case status == http.StatusNotFound && attempt == 0:
			c.forgetGroup(name, gid)
			continue
		case status == http.StatusNotFound:
			return nil // deleted again while we looked
		case status == http.StatusBadRequest && scimType == "noTarget":
			// RFC 7644 Table 9: "a filter that yields no match": the
			// member is already gone.
			return nil
		}
		return err
	}
}

// userMissing reports whether GET /Users/ref answers 404.
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
	return name, nil
}

// groupID returns the id of the group called name, from the cache or the
// target; "" when the target has none and create is false.
func (c *Conn) groupID(ctx context.Context, name string, create bool) (string, error) {
	c.mu.Lock()
	id, ok := c.groups[name]
	c.mu.Unlock()
	if ok {
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
	if created.ID == "" {
		return "", connectors.Errorf(connectors.Permanent, "POST /Groups: the target returned no id")
	}
	c.log.InfoContext(ctx, "scim connector: created group", "connector", c.name, "group", name, "id", created.ID)
	c.rememberGroup(name, created.ID)
	return created.ID, nil
}

// findGroup looks the group up by displayName and caches its id. An exact
// match wins over one differing only in case (displayName is not
// caseExact, and some targets allow both).
func (c *Conn) findGroup(ctx context.Context, name string) (string, error) {
	var page listResponse[group]
	q := url.Values{"filter": {eqFilter("displayName", name)}, "attributes": {"displayName"}}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/Groups", query: q}, &page); err != nil {
		return "", err
	}
	id := ""
	for _, g := range page.Resources {
		if g.ID == "" {
			continue
		}
		if g.DisplayName == name {
			id = g.ID
			break
		}
		if id == "" && strings.EqualFold(g.DisplayName, name) {
			id = g.ID
		}
	}
	if id != "" {
		c.rememberGroup(name, id)
	}
	return id, nil
}

func (c *Conn) rememberGroup(name, id string) {
	c.mu.Lock()
	c.groups[name] = id
	c.mu.Unlock()
}

// forgetGroup drops name from the cache if it still maps to id.
func (c *Conn) forgetGroup(name, id string) {
	c.mu.Lock()
	if c.groups[name] == id {
		delete(c.groups, name)
	}
	c.mu.Unlock()
}

// ListAccounts pages through /Users and then /Groups (with members),
// page_size resources a page, and returns every user with the groups it
// is a direct member of as "group:<displayName>", sorted; the accounts are
// sorted by userName. It is not a snapshot: changes made while it pages
// may or may not show. Errors are those of the failing request; nothing
// partial is returned.
func (c *Conn) ListAccounts(ctx context.Context) ([]connectors.AccountState, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError("ListAccounts", err)
	}
	var out []connectors.AccountState
	index := map[string]int{}
	err := pages(ctx, c, "/Users", url.Values{"attributes": {"userName,externalId,active"}}, func(u user) {
		if u.ID == "" {
			return
		}
		if _, dup := index[u.ID]; dup { // a page boundary shifted under us
			return
		}
		index[u.ID] = len(out)
		out = append(out, connectors.AccountState{Ref: u.ID, UserName: u.UserName, IdentityID: u.ExternalID, Enabled: u.enabled()})
	})
	if err != nil {
		return nil, err
	}
	err = pages(ctx, c, "/Groups", url.Values{"attributes": {"displayName,members"}}, func(g group) {
		if g.ID == "" || g.DisplayName == "" {
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
		if err := c.do(ctx, request{method: http.MethodGet, path: path, query: q}, &page); err != nil {
			return err
		}
		for _, r := range page.Resources {
			fn(r)
		}
		n := len(page.Resources)
		start += n
		if n == 0 || (page.TotalResults > 0 && start > page.TotalResults) || (page.TotalResults == 0 && n < c.pageSize) {
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
