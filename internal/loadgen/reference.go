package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SCIM message URNs used by the reference and the load generator.
const (
	schemaUser         = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaEnterprise   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	schemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	schemaPatchOp      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	schemaError        = "urn:ietf:params:scim:api:messages:2.0:Error"
	schemaBulkRequest  = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
	scimContentType    = "application/scim+json"
)

// Reference is the yardstick jmlgate is measured against: a minimal net/http
// SCIM users endpoint that checks the bearer token against its SHA-256, decodes
// the request and runs exactly one SQLite transaction per request, with the
// settings jmlgate uses (WAL, synchronous=NORMAL, one writer connection taking
// the write lock at BEGIN, a reader pool). It does no schema validation, no
// attribute projection and no audit; that gap is what the ratios measure.
//
// Routes (all under /scim/v2, all requiring "Authorization: Bearer <token>"):
//
//	POST   /Users                           201, the stored user; 409 on a taken userName
//	GET    /Users/{id}                      200, the user; 404
//	PATCH  /Users/{id}                      200, the patched user; 404; 400 on an
//	                                        operation other than add/replace/remove of a
//	                                        top-level attribute
//	GET    /Users?filter=userName eq "x"    200 ListResponse (case-insensitive match)
//	GET    /Users?startIndex=i&count=n      200 ListResponse in creation order
type Reference struct {
	w, r *sql.DB
	hash [sha256.Size]byte
	mux  *http.ServeMux
	now  func() time.Time
}

var _ http.Handler = (*Reference)(nil)

// NewReference opens (creating if needed) the SQLite database at dbPath and
// returns a reference server accepting the bearer token token. Only the
// token's SHA-256 is kept. It fails if the database cannot be opened or its
// schema created.
func NewReference(dbPath, token string) (*Reference, error) {
	if token == "" {
		return nil, errors.New("loadgen: reference: empty token")
	}
	dsn := "file:" + (&url.URL{Path: dbPath}).EscapedPath() +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("loadgen: reference: open writer %s: %w", dbPath, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	if _, err := w.Exec(`CREATE TABLE IF NOT EXISTS users (
		id        TEXT PRIMARY KEY,
		user_name TEXT NOT NULL,
		data      BLOB NOT NULL
	);
	CREATE UNIQUE INDEX IF NOT EXISTS users_user_name ON users (lower(user_name));`); err != nil {
		w.Close()
		return nil, fmt.Errorf("loadgen: reference: create schema in %s: %w", dbPath, err)
	}
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("loadgen: reference: open readers %s: %w", dbPath, err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)

	ref := &Reference{w: w, r: r, hash: sha256.Sum256([]byte(token)), now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /scim/v2/Users", ref.create)
	mux.HandleFunc("GET /scim/v2/Users", ref.list)
	mux.HandleFunc("GET /scim/v2/Users/{id}", ref.get)
	mux.HandleFunc("PATCH /scim/v2/Users/{id}", ref.patch)
	ref.mux = mux
	return ref, nil
}

// Close closes both connection pools.
func (ref *Reference) Close() error {
	return errors.Join(ref.w.Close(), ref.r.Close())
}

// ServeHTTP checks the bearer token (401 without a matching one) and routes.
func (ref *Reference) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if h := sha256.Sum256([]byte(tok)); !ok || subtle.ConstantTimeCompare(h[:], ref.hash[:]) != 1 {
		scimError(w, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	ref.mux.ServeHTTP(w, r)
}

func (ref *Reference) create(w http.ResponseWriter, r *http.Request) {
	doc, ok := decodeObject(w, r)
	if !ok {
		return
	}
	name, _ := doc["userName"].(string)
	if name == "" {
		scimError(w, http.StatusBadRequest, `attribute "userName" is required`)
		return
	}
	id := newID()
	now := ref.now().UTC().Format(time.RFC3339Nano)
	doc["id"] = id
	doc["meta"] = map[string]any{"resourceType": "User", "created": now, "lastModified": now,
		"version": `W/"1"`, "location": "/scim/v2/Users/" + id}
	data, err := json.Marshal(doc)
	if err != nil {
		scimError(w, http.StatusInternalServerError, "encode user")
		return
	}
	err = ref.writeTx(r.Context(), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(r.Context(), `INSERT INTO users (id, user_name, data) VALUES (?, ?, ?)`, id, name, data)
		return err
	})
	switch {
	case isUniqueViolation(err):
		scimError(w, http.StatusConflict, fmt.Sprintf("userName %q is taken", name))
		return
	case err != nil:
		scimError(w, http.StatusInternalServerError, "store user")
		return
	}
	writeJSON(w, http.StatusCreated, data)
}

func (ref *Reference) get(w http.ResponseWriter, r *http.Request) {
	var data []byte
	err := ref.r.QueryRowContext(r.Context(), `SELECT data FROM users WHERE id = ?`, r.PathValue("id")).Scan(&data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		scimError(w, http.StatusNotFound, "no such user")
	case err != nil:
		scimError(w, http.StatusInternalServerError, "read user")
	default:
		writeJSON(w, http.StatusOK, data)
	}
}

type patchRequest struct {
	Schemas    []string `json:"schemas"`
	Operations []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	} `json:"Operations"`
}

func (ref *Reference) patch(w http.ResponseWriter, r *http.Request) {
	var req patchRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		scimError(w, http.StatusBadRequest, "invalid PatchOp body")
		return
	}
	id := r.PathValue("id")
	var out []byte
	var status int
	err := ref.writeTx(r.Context(), func(tx *sql.Tx) error {
		var data []byte
		err := tx.QueryRowContext(r.Context(), `SELECT data FROM users WHERE id = ?`, id).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			status = http.StatusNotFound
			return err
		}
		if err != nil {
			return err
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			return err
		}
		for i, op := range req.Operations {
			if err := applyOp(doc, strings.ToLower(op.Op), op.Path, op.Value); err != nil {
				status = http.StatusBadRequest
				return fmt.Errorf("operation %d: %w", i, err)
			}
		}
		if meta, ok := doc["meta"].(map[string]any); ok {
			meta["lastModified"] = ref.now().UTC().Format(time.RFC3339Nano)
		}
		if out, err = json.Marshal(doc); err != nil {
			return err
		}
		name, _ := doc["userName"].(string)
		_, err = tx.ExecContext(r.Context(), `UPDATE users SET user_name = ?, data = ? WHERE id = ?`, name, out, id)
		return err
	})
	switch {
	case status == http.StatusNotFound:
		scimError(w, status, "no such user")
	case status == http.StatusBadRequest:
		scimError(w, status, err.Error())
	case isUniqueViolation(err):
		scimError(w, http.StatusConflict, "userName is taken")
	case err != nil:
		scimError(w, http.StatusInternalServerError, "patch user")
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// applyOp applies one PATCH operation limited to top-level attributes, or a
// path-less add/replace of an object of top-level attributes.
func applyOp(doc map[string]any, op, path string, raw json.RawMessage) error {
	if strings.ContainsAny(path, ".[:") {
		return fmt.Errorf("path %q not supported by the reference", path)
	}
	switch op {
	case "add", "replace":
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("invalid value: %w", err)
		}
		if path != "" {
			doc[path] = v
			return nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return errors.New("path-less operation needs an object value")
		}
		for k, x := range m {
			doc[k] = x
		}
		return nil
	case "remove":
		if path == "" {
			return errors.New("remove needs a path")
		}
		delete(doc, path)
		return nil
	default:
		return fmt.Errorf("unknown op %q", op)
	}
}

func (ref *Reference) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if f := q.Get("filter"); f != "" {
		attr, rest, _ := strings.Cut(strings.TrimSpace(f), " ")
		op, val, _ := strings.Cut(strings.TrimSpace(rest), " ")
		val, err := strconv.Unquote(strings.TrimSpace(val))
		if !strings.EqualFold(attr, "userName") || !strings.EqualFold(op, "eq") || err != nil {
			scimError(w, http.StatusBadRequest, `the reference supports only filter=userName eq "value"`)
			return
		}
		var data []byte
		err = ref.r.QueryRowContext(r.Context(), `SELECT data FROM users WHERE lower(user_name) = lower(?)`, val).Scan(&data)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			writeList(w, 0, 1, nil)
		case err != nil:
			scimError(w, http.StatusInternalServerError, "lookup user")
		default:
			writeList(w, 1, 1, [][]byte{data})
		}
		return
	}
	start, count := 1, 100
	if s := q.Get("startIndex"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			scimError(w, http.StatusBadRequest, "startIndex is not an integer")
			return
		}
		start = max(n, 1)
	}
	if s := q.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			scimError(w, http.StatusBadRequest, "count is not an integer")
			return
		}
		count = min(max(n, 0), 1000)
	}
	var (
		total int
		page  [][]byte
	)
	err := func() error {
		tx, err := ref.r.BeginTx(r.Context(), &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := tx.QueryRowContext(r.Context(), `SELECT count(*) FROM users`).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.QueryContext(r.Context(), `SELECT data FROM users ORDER BY rowid LIMIT ? OFFSET ?`, count, start-1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				return err
			}
			page = append(page, data)
		}
		return rows.Err()
	}()
	if err != nil {
		scimError(w, http.StatusInternalServerError, "list users")
		return
	}
	writeList(w, total, start, page)
}

// writeTx runs fn in one transaction on the single writer connection
// (BEGIN IMMEDIATE), committing if fn returns nil.
func (ref *Reference) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := ref.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

func decodeObject(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil {
		scimError(w, http.StatusBadRequest, "request body is not a JSON object")
		return nil, false
	}
	return doc, true
}

func writeList(w http.ResponseWriter, total, start int, page [][]byte) {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"schemas":[%q],"totalResults":%d,"startIndex":%d,"itemsPerPage":%d,"Resources":[`,
		schemaListResponse, total, start, len(page))
	for i, d := range page {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(d)
	}
	b.WriteString("]}")
	writeJSON(w, http.StatusOK, b.Bytes())
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", scimContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func scimError(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(map[string]any{"schemas": []string{schemaError},
		"status": strconv.Itoa(status), "detail": detail})
	writeJSON(w, status, body)
}

// newID returns a random UUIDv4 string.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
