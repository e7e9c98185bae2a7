package scim

import (
	"fmt"
	"testing"
	"time"
)

// TestUUID7 checks the properties the store's indexes rely on: ids carry
// their creation millisecond first (so new rows land at an index's
// right-hand edge), are RFC 9562 version 7, and stay random within a
// millisecond (so they are not guessable).
func TestUUID7(t *testing.T) {
	t.Parallel()
	t0 := time.UnixMilli(1_790_000_000_123)
	a, b := uuid7(t0), uuid7(t0.Add(time.Millisecond))
	if a >= b {
		t.Errorf("uuid7 of a later millisecond sorts first: %s >= %s", a, b)
	}
	if got, want := a[:8]+a[9:13], fmt.Sprintf("%012x", t0.UnixMilli()); got != want {
		t.Errorf("timestamp field of %s = %s, want %s", a, got, want)
	}
	if a[14] != '7' || !(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b') {
		t.Errorf("%s: want version 7 and the RFC 9562 variant", a)
	}
	seen := map[string]bool{}
	for range 1000 {
		seen[uuid7(t0)] = true
	}
	if len(seen) != 1000 {
		t.Errorf("1000 ids in one millisecond gave %d distinct values", len(seen))
	}
}
