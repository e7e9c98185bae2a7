package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// maxIdentifier is PostgreSQL's identifier limit in bytes (NAMEDATALEN-1);
// longer names are silently truncated by the server, so none is sent.
const maxIdentifier = 63

// hashLen is the number of hex digits of SHA-256 appended to a role name
// that had to be sanitised or truncated.
const hashLen = 8

// Limits of what EnsureAccount accepts from the SCIM user.
const (
	maxUserName   = 1024
	maxIdentityID = 256
)

// commentMarker starts the comment of every role the connector manages.
const commentMarker = "jmlgate:"

// userNameField introduces the userName on the comment's second line.
const userNameField = "userName="

// RoleName is the role EnsureAccount creates for userName: prefix followed
// by userName with A-Z in lower case and every other character outside
// [a-z0-9_] (including every non-ASCII one) replaced by "_". When that replacement changed anything, or the result
// would not fit PostgreSQL's 63-byte limit, the name is cut to fit and
// "_" plus the first 8 hex digits of SHA-256(lower-case userName) is
// appended, so "a.b" and "a_b" (or two long names sharing 63 bytes) get
// different roles. userNames that differ only in case (the same SCIM
// userName) get the same role.
//
// A person keeps the role they were created with: EnsureAccount finds it
// again by identity id after a rename.
func RoleName(prefix, userName string) string {
	var b strings.Builder
	lossy := false
	for _, r := range userName {
		switch {
		case r >= 'A' && r <= 'Z':
			b.WriteRune(unicode.ToLower(r))
		case r < utf8.RuneSelf && isNameByte(byte(r)):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
			lossy = true
		}
	}
	base := b.String()
	room := maxIdentifier - len(prefix)
	if !lossy && len(base) <= room {
		return prefix + base
	}
	sum := sha256.Sum256([]byte(strings.ToLower(userName)))
	suffix := "_" + hex.EncodeToString(sum[:])[:hashLen]
	if keep := room - len(suffix); len(base) > keep {
		base = base[:keep] // ASCII only: no rune is split
	}
	return prefix + base + suffix
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
}

// ident quotes a role name as an SQL identifier. Callers have rejected NUL
// (which pgx would silently drop, naming another role).
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes s as an SQL string constant for the statements that take
// no bind parameters (COMMENT, PASSWORD). The E'…' form means the same
// whatever standard_conforming_strings says: backslashes and quotes are
// both escaped. s must be valid UTF-8 without NUL (checked by callers; the
// check here is the last line).
func literal(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("string constant contains a NUL byte")
	}
	if !utf8.ValidString(s) {
		return "", errors.New("string constant is not valid UTF-8")
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `''`)
	return "E'" + s + "'", nil
}

// comment is the role comment that marks a managed role: the marker and
// the identity id on the first line (the line EnsureAccount searches), the
// userName on the second.
func comment(identityID, userName string) string {
	return commentMarker + identityID + "\n" + userNameField + userName
}

// parseComment reads a role comment. managed is false for a comment
// jmlgate did not write (or none); a comment of only the first line is
// managed with an unknown userName.
func parseComment(c string) (identityID, userName string, managed bool) {
	first, rest, _ := strings.Cut(c, "\n")
	id, ok := strings.CutPrefix(first, commentMarker)
	if !ok {
		return "", "", false
	}
	userName, _ = strings.CutPrefix(rest, userNameField)
	return id, userName, true
}

// checkAccount rejects what cannot be stored faithfully in a role name and
// comment.
func checkAccount(identityID, userName string) error {
	switch {
	case identityID == "":
		return errors.New("account has no identity id")
	case len(identityID) > maxIdentityID:
		return fmt.Errorf("identity id of %d bytes: at most %d", len(identityID), maxIdentityID)
	case !utf8.ValidString(identityID):
		return errors.New("identity id is not valid UTF-8")
	case strings.IndexFunc(identityID, unicode.IsControl) >= 0:
		return errors.New("identity id contains a control character")
	case userName == "":
		return errors.New("account has no userName")
	case len(userName) > maxUserName:
		return fmt.Errorf("userName of %d bytes: at most %d", len(userName), maxUserName)
	case !utf8.ValidString(userName):
		return errors.New("userName is not valid UTF-8")
	case strings.IndexByte(userName, 0) >= 0:
		return errors.New("userName contains a NUL byte")
	}
	return nil
}
