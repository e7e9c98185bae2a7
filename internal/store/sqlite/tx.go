package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/jmlgate/jmlgate/internal/store"
)

// readTx implements store.ReadTx on any transaction.
type readTx struct {
	tx    *sql.Tx
	cache *stmtCache // the pool's prepared statements; nil disables caching
}

// writeTx implements store.Tx on the writer's transaction.
type writeTx struct {
	readTx
	batch *batchState // shared by the functions of one group-commit batch
}

// batchState caches what one batch's functions would otherwise re-read.
type batchState struct {
	// head is the last audit record appended in this batch; nil when
	// unknown (start of batch, or after a savepoint rolled back).
	head *store.AuditRecord
}

// AuditHead implements store.ReadTx, answering from the batch's cache when
// a record was appended in it: every write appends one, so this saves a
// query per write.
func (t *writeTx) AuditHead(ctx context.Context) (*store.AuditRecord, error) {
	if t.batch != nil && t.batch.head != nil {
		h := *t.batch.head
		return &h, nil
	}
	return t.readTx.AuditHead(ctx)
}

var (
	_ store.ReadTx = (*readTx)(nil)
	_ store.Tx     = (*writeTx)(nil)
)

// scanBatch is how many resources ScanResources reads per query; no rows stay
// open while its callback runs, so the callback may use the transaction. It
// is spelled out in scanQuery too: a bound LIMIT costs a second prepare.
const scanBatch = 256

const scanQuery = `SELECT seq, ` + resourceCols + ` FROM resources WHERE type = ? AND seq > ? ORDER BY seq LIMIT 256`

const resourceCols = `id, type, external_id, name, display, version, created, modified, data`

// foldKey is the case-insensitive comparison key of a name. It is computed
// here rather than with SQL lower(), which folds ASCII only.
func foldKey(s string) string { return strings.ToLower(s) }

// isConflict reports a UNIQUE or PRIMARY KEY violation, by SQLite's extended
// result code.
func isConflict(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// Time range representable as int64 nanoseconds.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos encodes t as UTC unix nanoseconds; it rejects times int64 cannot
// hold (including the zero time).
func nanos(t time.Time, field string) (int64, error) {
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("%s %s outside the storable range (years 1678-2262)", field, t.Format(time.RFC3339Nano))
	}
	return t.UnixNano(), nil
}

// optNanos is nanos with the zero time stored as NULL.
func optNanos(t time.Time, field string) (sql.NullInt64, error) {
	if t.IsZero() {
		return sql.NullInt64{}, nil
	}
	n, err := nanos(t, field)
	return sql.NullInt64{Int64: n, Valid: true}, err
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func fromOptNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

// blob keeps a nil slice from being bound as NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// unblob returns nil for an empty stored blob.
func unblob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

type rowScanner interface{ Scan(dest ...any) error }

func scanResource(row rowScanner) (*store.Resource, error) {
	var (
		r                 store.Resource
		ext               sql.NullString
		created, modified int64
		data              string
	)
	if err := row.Scan(&r.ID, &r.Type, &ext, &r.Name, &r.Display, &r.Version, &created, &modified, &data); err != nil {
		return nil, err
	}
	r.ExternalID = ext.String
	r.Created = fromNanos(created)
	r.LastModified = fromNanos(modified)
	r.Data = []byte(data)
	return &r, nil
}

func checkType(typ string) error {
	if typ != store.TypeUser && typ != store.TypeGroup {
		return fmt.Errorf("unknown resource type %q", typ)
	}
	return nil
}

// GetResource implements store.ReadTx.
func (t *readTx) GetResource(ctx context.Context, typ, id string) (*store.Resource, error) {
	row := t.queryRow(ctx, `SELECT `+resourceCols+` FROM resources WHERE type = ? AND id = ?`, typ, id)
	r, err := scanResource(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get %s %q: %w", typ, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get %s %q: %w", typ, id, err)
	}
	return r, nil
}

// listWhere maps each index attribute to its fixed WHERE clause; the second
// placeholder, if any, takes the folded or raw IndexValue.
var listWhere = map[store.IndexAttr]string{
	"":                    `type = ?`,
	store.IndexID:         `type = ? AND id = ?`,
	store.IndexExternalID: `type = ? AND external_id = ?`,
	store.IndexName:       `type = ? AND name_key = ?`,
}

// listOrder maps each sort key to its fixed ORDER BY clauses, ascending and
// descending. Ties fall back to creation order (seq), reversed with the key.
// A missing externalId sorts after every present one (RFC 7644 §3.4.2.3).
var listOrder = map[store.SortKey][2]string{
	store.SortNone:         {`seq`, `seq DESC`},
	store.SortName:         {`name_key, seq`, `name_key DESC, seq DESC`},
	store.SortExternalID:   {`external_id IS NULL, external_id, seq`, `external_id IS NULL DESC, external_id DESC, seq DESC`},
	store.SortCreated:      {`created, seq`, `created DESC, seq DESC`},
	store.SortLastModified: {`modified, seq`, `modified DESC, seq DESC`},
	store.SortDisplay:      {`display_key, seq`, `display_key DESC, seq DESC`},
}

// listPlan is a ListQuery turned into SQL: where and order come from fixed
// whitelists, never from the query's values.
type listPlan struct {
	from         string // "resources", or with an INDEXED BY the planner would not guess
	where, order string
	args         []any // type and index value
	countFirst   bool  // a count is needed (paged or offset)
}

func planList(q store.ListQuery) (*listPlan, error) {
	where, ok := listWhere[q.IndexAttr]
	if !ok {
		return nil, fmt.Errorf("sqlite: list %s: unsupported index attribute %q", q.Type, q.IndexAttr)
	}
	orders, ok := listOrder[q.Sort]
	if !ok {
		return nil, fmt.Errorf("sqlite: list %s: unsupported sort key %q", q.Type, q.Sort)
	}
	p := &listPlan{from: "resources", where: where, order: orders[0], args: []any{q.Type}}
	if q.Descending {
		p.order = orders[1]
	}
	// Names have one index per type, and SQLite, which keeps no statistics
	// here, needs telling: users' names are the unique user_key (folded
	// userName, NULL for groups); groups' are the partial index
	// resources_group_name. "+type" keeps the planner off the type indexes.
	if q.IndexAttr == store.IndexName || (q.IndexAttr == "" && q.Sort == store.SortName) {
		switch q.Type {
		case store.TypeUser:
			p.where = `+type = ? AND user_key IS NOT NULL`
			if q.IndexAttr == store.IndexName {
				p.where = `+type = ? AND user_key = ?`
			}
			p.order = map[bool]string{false: `user_key`, true: `user_key DESC`}[q.Descending]
		case store.TypeGroup:
			p.from = `resources INDEXED BY resources_group_name`
			p.where = `+type = ? AND type = 'Group'`
			if q.IndexAttr == store.IndexName {
				p.where += ` AND name_key = ?`
			}
		}
	}
	switch q.IndexAttr {
	case store.IndexName:
		p.args = append(p.args, foldKey(q.IndexValue))
	case store.IndexID, store.IndexExternalID:
		p.args = append(p.args, q.IndexValue)
	}
	// An uncapped page from the start is the whole match: no count needed.
	p.countFirst = q.Limit >= 0 || q.Offset > 0
	return p, nil
}

// pageSQL is the SELECT of the page (without LIMIT when no count is needed:
// a bound LIMIT makes SQLite prepare the statement twice).
func (p *listPlan) pageSQL(q store.ListQuery) string {
	cols := resourceCols
	if q.WithGroups {
		cols += `, ` + groupsColumn
	}
	query := `SELECT ` + cols + ` FROM ` + p.from + ` WHERE ` + p.where + ` ORDER BY ` + p.order
	if p.countFirst {
		query += ` LIMIT ? OFFSET ?`
	}
	return query
}

// ListResources implements store.ReadTx. The count and the page are read in
// the same transaction, so they agree; Limit 0 runs only the count, and an
// uncapped query from offset 0 only the page.
func (t *readTx) ListResources(ctx context.Context, q store.ListQuery) ([]*store.Resource, int, error) {
	p, err := planList(q)
	if err != nil {
		return nil, 0, err
	}
	args := p.args
	offset := max(q.Offset, 0)
	limit := q.Limit
	var total int
	if p.countFirst {
		countQuery := `SELECT count(*) FROM ` + p.from + ` WHERE ` + p.where
		if q.IndexAttr == "" {
			countQuery = `SELECT n FROM resource_counts WHERE type = ?`
		}
		if err := t.queryRow(ctx, countQuery, args...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("sqlite: count %s: %w", q.Type, err)
		}
		if limit == 0 || offset >= total {
			return nil, total, nil
		}
		if limit < 0 {
			limit = -1 // SQLite: no limit
		}
		args = append(args, limit, offset)
	}
	rows, err := t.query(ctx, p.pageSQL(q), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: list %s: %w", q.Type, err)
	}
	out, err := collectResources(rows, q.WithGroups)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: list %s: %w", q.Type, err)
	}
	if !p.countFirst {
		total = len(out)
	}
	return out, total, nil
}

func collectResources(rows *sql.Rows, withGroups bool) ([]*store.Resource, error) {
	defer rows.Close()
	var out []*store.Resource
	for rows.Next() {
		var r *store.Resource
		var err error
		if withGroups {
			var groups string
			if r, err = scanResource(suffixScanner{rows, &groups}); err == nil {
				r.Groups, err = decodeGroups(groups)
				r.GroupsRead = true
			}
		} else {
			r, err = scanResource(rows)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// groupsColumn reads a resource's groups with the resource itself, as a
// JSON array of [id, display] pairs ordered by id.
const groupsColumn = `(SELECT coalesce(json_group_array(json_array(g.id, g.display)), '[]') FROM (
	SELECT g.id, g.display FROM group_members m JOIN resources g ON g.id = m.group_id
	WHERE m.member_id = resources.id ORDER BY m.group_id) AS g)`

func decodeGroups(s string) ([]store.GroupRef, error) {
	if s == "[]" || s == "" {
		return nil, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal([]byte(s), &pairs); err != nil {
		return nil, fmt.Errorf("groups column: %w", err)
	}
	out := make([]store.GroupRef, len(pairs))
	for i, p := range pairs {
		out[i] = store.GroupRef{ID: p[0], Display: p[1]}
	}
	return out, nil
}

// suffixScanner scans the resource columns, then one trailing column.
type suffixScanner struct {
	rows *sql.Rows
	last any
}

func (p suffixScanner) Scan(dest ...any) error {
	return p.rows.Scan(append(dest, p.last)...)
}

// ScanResources implements store.ReadTx. It reads in batches keyed on the
// creation sequence, so fn may use the transaction, and resources fn creates
// are visited too.
func (t *readTx) ScanResources(ctx context.Context, typ string, fn func(*store.Resource) error) error {
	var after int64
	for {
		rows, err := t.query(ctx, scanQuery, typ, after)
		if err != nil {
			return fmt.Errorf("sqlite: scan %s: %w", typ, err)
		}
		var batch []*store.Resource
		for rows.Next() {
			var seq int64
			r, err := scanResource(prefixScanner{rows, &seq})
			if err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: scan %s: %w", typ, err)
			}
			after = seq
			batch = append(batch, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlite: scan %s: %w", typ, err)
		}
		for _, r := range batch {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(batch) < scanBatch {
			return nil
		}
	}
}

// prefixScanner scans one leading column into first, then the rest.
type prefixScanner struct {
	rows  *sql.Rows
	first any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.rows.Scan(append([]any{p.first}, dest...)...)
}

// Members implements store.ReadTx.
func (t *readTx) Members(ctx context.Context, groupID string) ([]store.Member, error) {
	rows, err := t.query(ctx, `
		SELECT m.member_id, m.member_type, r.display
		FROM group_members m JOIN resources r ON r.id = m.member_id
		WHERE m.group_id = ?
		ORDER BY m.member_id`, groupID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: members of group %q: %w", groupID, err)
	}
	defer rows.Close()
	var out []store.Member
	for rows.Next() {
		var m store.Member
		if err := rows.Scan(&m.Value, &m.Type, &m.Display); err != nil {
			return nil, fmt.Errorf("sqlite: members of group %q: %w", groupID, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: members of group %q: %w", groupID, err)
	}
	return out, nil
}

// GroupsOf implements store.ReadTx.
func (t *readTx) GroupsOf(ctx context.Context, memberID string) ([]store.GroupRef, error) {
	rows, err := t.query(ctx, `
		SELECT g.id, g.display
		FROM group_members m JOIN resources g ON g.id = m.group_id
		WHERE m.member_id = ?
		ORDER BY m.group_id`, memberID) // = g.id, in the covering index's order: no sort
	if err != nil {
		return nil, fmt.Errorf("sqlite: groups of %q: %w", memberID, err)
	}
	defer rows.Close()
	var out []store.GroupRef
	for rows.Next() {
		var g store.GroupRef
		if err := rows.Scan(&g.ID, &g.Display); err != nil {
			return nil, fmt.Errorf("sqlite: groups of %q: %w", memberID, err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: groups of %q: %w", memberID, err)
	}
	return out, nil
}

// GroupsOfEach implements store.ReadTx with one statement: the ids travel as
// a JSON array so the text never varies and stays prepared.
func (t *readTx) GroupsOfEach(ctx context.Context, memberIDs []string) (map[string][]store.GroupRef, error) {
	out := make(map[string][]store.GroupRef, len(memberIDs))
	if len(memberIDs) == 0 {
		return out, nil
	}
	ids, err := json.Marshal(memberIDs)
	if err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `
		SELECT m.member_id, g.id, g.display
		FROM group_members m JOIN resources g ON g.id = m.group_id
		WHERE m.member_id IN (SELECT value FROM json_each(?))
		ORDER BY m.member_id, m.group_id`, string(ids))
	if err != nil {
		return nil, fmt.Errorf("sqlite: groups of %d members: %w", len(memberIDs), err)
	}
	defer rows.Close()
	for rows.Next() {
		var member string
		var g store.GroupRef
		if err := rows.Scan(&member, &g.ID, &g.Display); err != nil {
			return nil, fmt.Errorf("sqlite: groups of %d members: %w", len(memberIDs), err)
		}
		out[member] = append(out[member], g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: groups of %d members: %w", len(memberIDs), err)
	}
	return out, nil
}

const tokenCols = `id, name, hash, scopes, created, expires, revoked`

func scanToken(row rowScanner) (*store.Token, error) {
	var (
		tk               store.Token
		scopes           string
		created          int64
		expires, revoked sql.NullInt64
	)
	if err := row.Scan(&tk.ID, &tk.Name, &tk.Hash, &scopes, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &tk.Scopes); err != nil {
		return nil, fmt.Errorf("token %q: scopes: %w", tk.Name, err)
	}
	if len(tk.Scopes) == 0 {
		tk.Scopes = nil
	}
	tk.Created = fromNanos(created)
	tk.Expires = fromOptNanos(expires)
	tk.Revoked = fromOptNanos(revoked)
	return &tk, nil
}

// TokenByHash implements store.ReadTx. Errors never show the hash.
func (t *readTx) TokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	tk, err := scanToken(t.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, blob(hash)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: token by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: token by hash: %w", err)
	}
	return tk, nil
}

// Tokens implements store.ReadTx.
func (t *readTx) Tokens(ctx context.Context) ([]*store.Token, error) {
	rows, err := t.query(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tokens: %w", err)
	}
	defer rows.Close()
	var out []*store.Token
	for rows.Next() {
		tk, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: tokens: %w", err)
		}
		out = append(out, tk)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: tokens: %w", err)
	}
	return out, nil
}

const auditCols = `seq, time, actor, action, resource_type, resource_id, request_id, before_digest, after_digest, prev_hash, hash`

func scanAudit(row rowScanner) (*store.AuditRecord, error) {
	var (
		r  store.AuditRecord
		ts int64
	)
	if err := row.Scan(&r.Seq, &ts, &r.Actor, &r.Action, &r.ResourceType, &r.ResourceID, &r.RequestID,
		&r.BeforeDigest, &r.AfterDigest, &r.PrevHash, &r.Hash); err != nil {
		return nil, err
	}
	r.Time = fromNanos(ts)
	r.PrevHash = unblob(r.PrevHash)
	r.Hash = unblob(r.Hash)
	return &r, nil
}

// AuditHead implements store.ReadTx.
func (t *readTx) AuditHead(ctx context.Context) (*store.AuditRecord, error) {
	r, err := scanAudit(t.queryRow(ctx, `SELECT `+auditCols+` FROM audit ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: audit head: empty chain: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit head: %w", err)
	}
	return r, nil
}

// AuditRange implements store.ReadTx.
func (t *readTx) AuditRange(ctx context.Context, fromSeq int64, limit int) ([]*store.AuditRecord, error) {
	if limit == 0 {
		return nil, nil
	}
	if limit < 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := t.query(ctx, `SELECT `+auditCols+` FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?`, fromSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit range from %d: %w", fromSeq, err)
	}
	defer rows.Close()
	var out []*store.AuditRecord
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit range from %d: %w", fromSeq, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit range from %d: %w", fromSeq, err)
	}
	return out, nil
}

// resourceArgs validates r and returns its column values in the order
// ext, name, name_key, user_key, display, display_key, version, created,
// modified, data.
func resourceArgs(r *store.Resource) ([]any, error) {
	if err := checkType(r.Type); err != nil {
		return nil, err
	}
	if r.ID == "" {
		return nil, errors.New("empty id")
	}
	created, err := nanos(r.Created, "created")
	if err != nil {
		return nil, err
	}
	modified, err := nanos(r.LastModified, "lastModified")
	if err != nil {
		return nil, err
	}
	key := foldKey(r.Name)
	userKey := sql.NullString{String: key, Valid: r.Type == store.TypeUser}
	return []any{nullString(r.ExternalID), r.Name, key, userKey, r.Display, foldKey(r.Display),
		r.Version, created, modified, string(r.Data)}, nil
}

// nameField is the attribute a resource's Name stands for, for messages.
func nameField(typ string) string {
	if typ == store.TypeUser {
		return "userName"
	}
	return "displayName"
}

// CreateResource implements store.Tx. On a conflict it tells whether the id
// or the userName was taken.
func (t *writeTx) CreateResource(ctx context.Context, r *store.Resource) error {
	args, err := resourceArgs(r)
	if err != nil {
		return fmt.Errorf("sqlite: create %s %q: %w", r.Type, r.ID, err)
	}
	_, err = t.exec(ctx, `
		INSERT INTO resources (id, type, external_id, name, name_key, user_key, display, display_key, version, created, modified, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		append([]any{r.ID, r.Type}, args...)...)
	if isConflict(err) {
		var n int
		if qerr := t.queryRow(ctx, `SELECT count(*) FROM resources WHERE id = ?`, r.ID).Scan(&n); qerr == nil && n > 0 {
			return fmt.Errorf("sqlite: create %s %q: id already exists: %w", r.Type, r.ID, store.ErrConflict)
		}
		return fmt.Errorf("sqlite: create %s %q: %s %q already taken: %w", r.Type, r.ID, nameField(r.Type), r.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create %s %q: %w", r.Type, r.ID, err)
	}
	return nil
}

// UpdateResource implements store.Tx. The creation order (and so list and
// scan position) of the resource is kept.
func (t *writeTx) UpdateResource(ctx context.Context, r *store.Resource) error {
	args, err := resourceArgs(r)
	if err != nil {
		return fmt.Errorf("sqlite: update %s %q: %w", r.Type, r.ID, err)
	}
	var (
		seq, stored int64
		name        string
		external    sql.NullString
	)
	err = t.queryRow(ctx, `SELECT seq, version, name, external_id FROM resources WHERE type = ? AND id = ?`,
		r.Type, r.ID).Scan(&seq, &stored, &name, &external)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: update %s %q: %w", r.Type, r.ID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: update %s %q: %w", r.Type, r.ID, err)
	}
	if stored != r.Version-1 {
		return fmt.Errorf("sqlite: update %s %q: stored version is %d, not %d: %w", r.Type, r.ID, stored, r.Version-1, store.ErrConflict)
	}
	// Most updates (a title, a department, an address) leave the name and
	// externalId alone. Leaving those columns out of the SET list lets
	// SQLite skip the three indexes built on them, which on a large
	// directory means three fewer cold pages read and written per write.
	if name == r.Name && external == nullString(r.ExternalID) {
		_, err = t.exec(ctx, `UPDATE resources SET display = ?, display_key = ?, version = ?, created = ?, modified = ?, data = ?
			WHERE seq = ?`, append(args[4:], seq)...)
	} else {
		_, err = t.exec(ctx, `
			UPDATE resources SET external_id = ?, name = ?, name_key = ?, user_key = ?, display = ?, display_key = ?,
				version = ?, created = ?, modified = ?, data = ?
			WHERE seq = ?`, append(args, seq)...)
	}
	if isConflict(err) {
		return fmt.Errorf("sqlite: update %s %q: %s %q already taken: %w", r.Type, r.ID, nameField(r.Type), r.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: update %s %q: %w", r.Type, r.ID, err)
	}
	return nil
}

// DeleteResource implements store.Tx. Memberships go with the resource
// through ON DELETE CASCADE on both group_members columns.
func (t *writeTx) DeleteResource(ctx context.Context, typ, id string) error {
	res, err := t.exec(ctx, `DELETE FROM resources WHERE type = ? AND id = ?`, typ, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete %s %q: %w", typ, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: delete %s %q: %w", typ, id, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete %s %q: %w", typ, id, store.ErrNotFound)
	}
	return nil
}

// AddMembers implements store.Tx. Every member is checked before any is
// added, so an error adds none. The stored member type is the member
// resource's own.
func (t *writeTx) AddMembers(ctx context.Context, groupID string, members []store.Member) error {
	var n int
	if err := t.queryRow(ctx, `SELECT count(*) FROM resources WHERE type = 'Group' AND id = ?`, groupID).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: add members to group %q: %w", groupID, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: add members to group %q: no such group: %w", groupID, store.ErrNotFound)
	}
	types := make([]string, len(members))
	for i, m := range members {
		err := t.queryRow(ctx, `SELECT type FROM resources WHERE id = ?`, m.Value).Scan(&types[i])
		if errors.Is(err, sql.ErrNoRows) || (err == nil && m.Type != "" && m.Type != types[i]) {
			typ := m.Type
			if typ == "" {
				typ = "resource"
			}
			return fmt.Errorf("sqlite: add members to group %q: member %d: no %s with id %q: %w", groupID, i, typ, m.Value, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: add members to group %q: member %d: %w", groupID, i, err)
		}
	}
	for i, m := range members {
		if _, err := t.exec(ctx, `
			INSERT INTO group_members (group_id, member_id, member_type) VALUES (?, ?, ?)
			ON CONFLICT (group_id, member_id) DO NOTHING`, groupID, m.Value, types[i]); err != nil {
			return fmt.Errorf("sqlite: add members to group %q: member %q: %w", groupID, m.Value, err)
		}
	}
	return nil
}

// RemoveMembers implements store.Tx.
func (t *writeTx) RemoveMembers(ctx context.Context, groupID string, values []string) error {
	for _, v := range values {
		if _, err := t.exec(ctx, `DELETE FROM group_members WHERE group_id = ? AND member_id = ?`, groupID, v); err != nil {
			return fmt.Errorf("sqlite: remove member %q from group %q: %w", v, groupID, err)
		}
	}
	return nil
}

// CreateToken implements store.Tx. A taken id, name or hash is a conflict.
func (t *writeTx) CreateToken(ctx context.Context, tk *store.Token) error {
	if tk.Name == "" {
		return fmt.Errorf("sqlite: create token: empty name")
	}
	scopes := tk.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	enc, err := json.Marshal(scopes)
	if err != nil {
		return fmt.Errorf("sqlite: create token %q: scopes: %w", tk.Name, err)
	}
	created, err := nanos(tk.Created, "created")
	if err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", tk.Name, err)
	}
	expires, err := optNanos(tk.Expires, "expires")
	if err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", tk.Name, err)
	}
	revoked, err := optNanos(tk.Revoked, "revoked")
	if err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", tk.Name, err)
	}
	_, err = t.exec(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		tk.ID, tk.Name, blob(tk.Hash), string(enc), created, expires, revoked)
	if isConflict(err) {
		return fmt.Errorf("sqlite: create token %q: id, name or hash already taken: %w", tk.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", tk.Name, err)
	}
	return nil
}

// RevokeToken implements store.Tx.
func (t *writeTx) RevokeToken(ctx context.Context, name string, at time.Time) error {
	n, err := nanos(at, "revocation time")
	if err != nil {
		return fmt.Errorf("sqlite: revoke token %q: %w", name, err)
	}
	res, err := t.exec(ctx, `UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL`, n, name)
	if err != nil {
		return fmt.Errorf("sqlite: revoke token %q: %w", name, err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: revoke token %q: %w", name, err)
	} else if k == 0 {
		return fmt.Errorf("sqlite: revoke token %q: no live token by that name: %w", name, store.ErrNotFound)
	}
	return nil
}

// AppendAudit implements store.Tx.
func (t *writeTx) AppendAudit(ctx context.Context, rec *store.AuditRecord) error {
	ts, err := nanos(rec.Time, "time")
	if err != nil {
		return fmt.Errorf("sqlite: append audit %d: %w", rec.Seq, err)
	}
	_, err = t.exec(ctx, `INSERT INTO audit (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		rec.Seq, ts, rec.Actor, rec.Action, rec.ResourceType, rec.ResourceID, rec.RequestID,
		rec.BeforeDigest, rec.AfterDigest, blob(rec.PrevHash), blob(rec.Hash))
	if err == nil && t.batch != nil {
		h := *rec
		t.batch.head = &h
	}
	if isConflict(err) {
		return fmt.Errorf("sqlite: append audit %d: sequence taken: %w", rec.Seq, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: append audit %d: %w", rec.Seq, err)
	}
	return nil
}
