package secrets

import (
	"path/filepath"
	"testing"
)

func benchVault(b *testing.B) *Vault {
	b.Helper()
	v, err := Open(filepath.Join(b.TempDir(), "keys.json"))
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func BenchmarkSeal(b *testing.B) {
	v := benchVault(b)
	pt := []byte(secretText)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Seal(pt, "totp:2b7e1516-28ae-d2a6"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnseal(b *testing.B) {
	v := benchVault(b)
	sealed, err := v.Seal([]byte(secretText), "totp:2b7e1516-28ae-d2a6")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Unseal(sealed, "totp:2b7e1516-28ae-d2a6"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFingerprint(b *testing.B) {
	v := benchVault(b)
	pt := []byte(secretText)
	b.ReportAllocs()
	for b.Loop() {
		_ = v.Fingerprint(pt)
	}
}
