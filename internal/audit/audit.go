// Package audit builds and checks jmlgate's tamper-evident history.
//
// Each record is serialised with a fixed, versioned binary encoding (Encode)
// that includes the previous record's hash, and hashed as an RFC 6962 leaf
// (SHA-256 over 0x00 || encoding, transparency-dev/merkle's rfc6962 hasher).
// The records therefore form a hash chain: editing, deleting, reordering or
// inserting any record changes every later hash, which Verify detects.
// Signed checkpoints over the Merkle tree of these leaves build on this.
//
// Append is the only way records are written. It runs inside the caller's
// store transaction, so a state change and its record commit together; if the
// append fails the caller's transaction fails (the log fails closed).
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/jmlgate/jmlgate/internal/store"
)

// encodingVersion is the first byte of every encoded record. A change to the
// encoding must bump it and keep the old decoder for verification.
const encodingVersion = 1

// Encode returns the canonical encoding of rec over which its hash is
// computed: every field except Hash, in a fixed order, each string or byte
// field length-prefixed (uint32 big endian), integers as int64 big endian and
// the time as UTC Unix nanoseconds.
func Encode(rec *store.AuditRecord) []byte {
	var b bytes.Buffer
	b.WriteByte(encodingVersion)
	putInt := func(v int64) {
		var x [8]byte
		binary.BigEndian.PutUint64(x[:], uint64(v))
		b.Write(x[:])
	}
	putBytes := func(p []byte) {
		var x [4]byte
		binary.BigEndian.PutUint32(x[:], uint32(len(p)))
		b.Write(x[:])
		b.Write(p)
	}
	putInt(rec.Seq)
	putInt(rec.Time.UTC().UnixNano())
	for _, s := range []string{rec.Actor, rec.Action, rec.ResourceType, rec.ResourceID, rec.RequestID, rec.BeforeDigest, rec.AfterDigest} {
		putBytes([]byte(s))
	}
	putBytes(rec.PrevHash)
	return b.Bytes()
}

// Hash returns the RFC 6962 leaf hash of rec's encoding.
func Hash(rec *store.AuditRecord) []byte {
	return rfc6962.DefaultHasher.HashLeaf(Encode(rec))
}

// Digest returns the hex SHA-256 of v's JSON encoding (maps encode with
// sorted keys, so equal documents have equal digests). Callers must not pass
// secrets: a digest of a low-entropy secret can be brute-forced. nil yields "".
func Digest(v any) string {
	if v == nil {
		return ""
	}
	if raw, ok := v.(json.RawMessage); ok && json.Valid(raw) && isCompact(raw) {
		// Already the encoding json.Marshal would produce: hash it as is.
		sum := sha256.Sum256(raw)
		return hex.EncodeToString(sum[:])
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Only unsupported types fail; documents are JSON-decoded maps.
		panic(fmt.Sprintf("audit: digest: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Entry is what a caller knows about an event; Append fills in the rest.
type Entry struct {
	Actor        string
	Action       string
	ResourceType string
	ResourceID   string
	RequestID    string
	Before       any // state before (nil if none), digested
	After        any // state after (nil if none), digested
}

// Append links e to the head of the chain and writes it with tx. It must run
// inside the same Update as the change it records. The error it returns
// (store failures, including store.ErrConflict if another writer took the
// sequence number) must abort that transaction.
func Append(ctx context.Context, tx store.Tx, now time.Time, e Entry) (*store.AuditRecord, error) {
	rec := &store.AuditRecord{
		Seq:          1,
		Time:         now.UTC(),
		Actor:        e.Actor,
		Action:       e.Action,
		ResourceType: e.ResourceType,
		ResourceID:   e.ResourceID,
		RequestID:    e.RequestID,
		BeforeDigest: Digest(e.Before),
		AfterDigest:  Digest(e.After),
	}
	head, err := tx.AuditHead(ctx)
	switch {
	case err == nil:
		rec.Seq = head.Seq + 1
		rec.PrevHash = head.Hash
	case errors.Is(err, store.ErrNotFound):
	default:
		return nil, fmt.Errorf("audit: read head: %w", err)
	}
	rec.Hash = Hash(rec)
	if err := tx.AppendAudit(ctx, rec); err != nil {
		return nil, fmt.Errorf("audit: append %s: %w", e.Action, err)
	}
	return rec, nil
}

// VerifyError locates the first broken link.
type VerifyError struct {
	Seq    int64 // sequence number of the offending record (expected one if missing)
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit chain broken at record %d: %s", e.Seq, e.Reason)
}

// Verifier checks records one at a time, in order. The zero value expects a
// chain starting at sequence 1.
type Verifier struct {
	next int64
	prev []byte
	n    int64
}

// Next checks rec against everything seen so far. It returns a *VerifyError
// for a gap, a reordering, an insertion, a broken link or an edited record.
func (v *Verifier) Next(rec *store.AuditRecord) error {
	if v.next == 0 {
		v.next = 1
	}
	if rec.Seq != v.next {
		return &VerifyError{Seq: v.next, Reason: fmt.Sprintf("expected sequence %d, found %d (record deleted, inserted or reordered)", v.next, rec.Seq)}
	}
	if !bytes.Equal(rec.PrevHash, v.prev) {
		return &VerifyError{Seq: rec.Seq, Reason: "previous-hash link does not match the preceding record"}
	}
	if !bytes.Equal(Hash(rec), rec.Hash) {
		return &VerifyError{Seq: rec.Seq, Reason: "record content does not match its hash (record edited)"}
	}
	v.prev = rec.Hash
	v.next++
	v.n++
	return nil
}

// Count returns how many records verified.
func (v *Verifier) Count() int64 { return v.n }

// Head returns the hash of the last verified record.
func (v *Verifier) Head() []byte { return v.prev }

// VerifyStore walks the whole chain in s in pages and returns the number of
// records verified and the first problem found.
func VerifyStore(ctx context.Context, s store.Store) (int64, error) {
	var v Verifier
	const page = 1000
	from := int64(1)
	for {
		var recs []*store.AuditRecord
		err := s.View(ctx, func(tx store.ReadTx) error {
			var err error
			recs, err = tx.AuditRange(ctx, from, page)
			return err
		})
		if err != nil {
			return v.Count(), fmt.Errorf("audit: read records from %d: %w", from, err)
		}
		for _, r := range recs {
			if err := v.Next(r); err != nil {
				return v.Count(), err
			}
		}
		if len(recs) < page {
			return v.Count(), nil
		}
		from = recs[len(recs)-1].Seq + 1
	}
}

// isCompact reports whether raw (valid JSON) has no insignificant white
// space and none of the characters json.Marshal escapes (<, >, &, U+2028,
// U+2029), so json.Marshal would return it unchanged.
func isCompact(raw []byte) bool {
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9):
			return false
		case !in && (c == ' ' || c == '\n' || c == '\t' || c == '\r'):
			return false
		}
	}
	return true
}
