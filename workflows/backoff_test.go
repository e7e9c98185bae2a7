package workflows

import (
	"testing"
	"time"
)

// Back-off grows, stays within [max/2, max] once capped, and never
// overflows, whatever the attempt count and configuration allow.
func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ base, max time.Duration }{
		{time.Second, 15 * time.Minute}, {time.Minute, time.Hour}, {time.Hour, 1000 * time.Hour}, {0, 0},
	} {
		d := &Dispatcher{BackoffBase: c.base, BackoffMax: c.max}
		maxD := c.max
		if maxD == 0 {
			maxD = 15 * time.Minute
		}
		for n := 0; n <= 100; n++ {
			got := d.backoff(n, 0)
			if got <= 0 || got > maxD {
				t.Fatalf("base %v max %v attempt %d: %v", c.base, c.max, n, got)
			}
		}
		if got := d.backoff(100, 0); got < maxD/2 {
			t.Errorf("attempt 100: %v, want capped near %v", got, maxD)
		}
	}
	if got := (&Dispatcher{}).backoff(3, 42*time.Second); got != 42*time.Second {
		t.Errorf("Retry-After ignored: %v", got)
	}
}
