package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jmlgate/jmlgate/connectors"
)

func TestRoleName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 100)
	cases := []struct {
		prefix, userName, want string
	}{
		{"jml_", "alice", "jml_alice"},
		{"jml_", "Alice", "jml_alice"},
		{"jml_", "bob_42", "jml_bob_42"},
		{"jml_", "alice@example.com", "jml_alice_example_com_" + hash8("alice@example.com")},
		{"jml_", "Alice@Example.com", "jml_alice_example_com_" + hash8("alice@example.com")},
		{"jml_", "a.b", "jml_a_b_" + hash8("a.b")},
		{"jml_", "a_b", "jml_a_b"},
		{"jml_", "日本", "jml____" + hash8("日本")},
		{"jml_", "\u212Aim", "jml__im_" + hash8("\u212Aim")}, // Kelvin sign: not the ASCII k
		{"jml_", strings.Repeat("a", 59), "jml_" + strings.Repeat("a", 59)},
		{"jml_", strings.Repeat("a", 60), "jml_" + strings.Repeat("a", 50) + "_" + hash8(strings.Repeat("a", 60))},
		{"jml_", long, "jml_" + strings.Repeat("a", 50) + "_" + hash8(long)},
		{"p", `"; DROP ROLE postgres; --`, "p___drop_role_postgres_____" + hash8(`"; drop role postgres; --`)},
	}
	for _, tc := range cases {
		got := RoleName(tc.prefix, tc.userName)
		if got != tc.want {
			t.Errorf("RoleName(%q, %q) = %q, want %q", tc.prefix, tc.userName, got, tc.want)
		}
		if len(got) > maxIdentifier {
			t.Errorf("RoleName(%q, %q) is %d bytes", tc.prefix, tc.userName, len(got))
		}
	}
	// Every pair that sanitises alike still gets distinct roles, with the
	// longest allowed prefix.
	prefix := strings.Repeat("p", maxRolePrefix)
	pairs := [][2]string{
		{"a.b", "a_b"}, {"a.b", "a-b"}, {long, long + "b"}, {long + "x", long + "y"},
		{"é", "è"}, {"user1@example.com", "user1_example.com"},
	}
	for _, p := range pairs {
		a, b := RoleName(prefix, p[0]), RoleName(prefix, p[1])
		if a == b {
			t.Errorf("%q and %q both map to %q", p[0], p[1], a)
		}
		if len(a) > maxIdentifier || len(b) > maxIdentifier {
			t.Errorf("%q/%q: %q/%q exceed 63 bytes", p[0], p[1], a, b)
		}
	}
}

// hash8 is the suffix the documentation promises: the first 8 hex digits
// of SHA-256 of the lower-case userName.
func hash8(s string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(s)))
	return hex.EncodeToString(sum[:])[:8]
}

func TestParseComment(t *testing.T) {
	t.Parallel()
	cases := []struct {
		comment, id, userName string
		managed               bool
	}{
		{"", "", "", false},
		{"made by the DBA", "", "", false},
		{"jmlgate:abc", "abc", "", true},
		{"jmlgate:abc\nuserName=x@y", "abc", "x@y", true},
		{"jmlgate:abc\nuserName=a\nuserName=b", "abc", "a\nuserName=b", true},
		{" jmlgate:abc", "", "", false},
		{comment("id-1", "o'brien\n"), "id-1", "o'brien\n", true},
	}
	for _, tc := range cases {
		id, u, m := parseComment(tc.comment)
		if id != tc.id || u != tc.userName || m != tc.managed {
			t.Errorf("parseComment(%q) = %q, %q, %v; want %q, %q, %v", tc.comment, id, u, m, tc.id, tc.userName, tc.managed)
		}
	}
}

// TestLiteralRoundTrip sends hostile strings through literal() to the real
// server, with standard_conforming_strings on and off, and reads them back.
func TestLiteralRoundTrip(t *testing.T) {
	t.Parallel()
	pool := adminPool(t)
	ctx := tctx(t)
	values := []string{
		``, `plain`, `o'brien`, `''`, `\`, `\'`, `'; DROP ROLE postgres; --`,
		`\x27`, `E'\''`, `$$`, "line\nbreak\r\ttab", `日本語 🔥`, strings.Repeat(`'\`, 500),
	}
	for _, scs := range []string{"on", "off"} {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SET standard_conforming_strings = "+scs); err != nil {
			conn.Release()
			t.Fatal(err)
		}
		for _, v := range values {
			lit, err := literal(v)
			if err != nil {
				t.Fatalf("literal(%q): %v", v, err)
			}
			var got string
			if err := conn.QueryRow(ctx, "SELECT "+lit).Scan(&got); err != nil || got != v {
				t.Errorf("standard_conforming_strings=%s: SELECT %s = %q, %v; want %q", scs, lit, got, err, v)
			}
		}
		conn.Exec(ctx, "RESET standard_conforming_strings")
		conn.Release()
	}
	for _, bad := range []string{"a\x00b", "\xff"} {
		if _, err := literal(bad); err == nil {
			t.Errorf("literal(%q) accepted", bad)
		}
	}
}

func TestClassOfCode(t *testing.T) {
	t.Parallel()
	cases := map[string]connectors.Class{
		"40001": connectors.Retryable, // serialization_failure
		"40P01": connectors.Retryable, // deadlock_detected
		"53300": connectors.Retryable, // too_many_connections
		"53100": connectors.Retryable, // disk_full
		"57P01": connectors.Retryable, // admin_shutdown
		"57P03": connectors.Retryable, // cannot_connect_now
		"57014": connectors.Retryable, // query_canceled
		"08006": connectors.Retryable, // connection_failure
		"55P03": connectors.Retryable, // lock_not_available
		"XX000": connectors.Retryable, // internal_error (tuple concurrently updated)
		"42501": connectors.Permanent, // insufficient_privilege
		"42704": connectors.Permanent, // undefined_object
		"28P01": connectors.Retryable, // invalid_password (an LDAP/PAM outage looks the same)
		"28000": connectors.Retryable, // invalid_authorization_specification
		"25006": connectors.Retryable, // read_only_sql_transaction (a standby)
		"25001": connectors.Permanent, // active_sql_transaction
		"3D000": connectors.Permanent, // invalid_catalog_name
		"0LP01": connectors.Permanent, // invalid_grant_operation
		"22021": connectors.Permanent, // character_not_in_repertoire
	}
	for code, want := range cases {
		if got := classOfCode(code); got != want {
			t.Errorf("classOfCode(%s) = %v, want %v", code, got, want)
		}
	}
}
