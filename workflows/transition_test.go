package workflows

import (
	"testing"
	"time"

	"github.com/jmlgate/jmlgate/internal/store"
)

var (
	now    = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	past   = now.Add(-24 * time.Hour)
	future = now.Add(24 * time.Hour)
)

func TestTransition(t *testing.T) {
	t.Parallel()
	in := func(active bool, start, end time.Time) inputs {
		return inputs{exists: true, active: active, start: start, end: end}
	}
	gone := inputs{}
	cases := []struct {
		name      string
		prev      string
		in        inputs
		state     string
		event     string
		nextCheck time.Time
	}{
		{"joiner, active, no dates", "", in(true, time.Time{}, time.Time{}), store.StateAwaitingMFA, "joiner", time.Time{}},
		{"joiner, active, started", "", in(true, past, time.Time{}), store.StateAwaitingMFA, "joiner", time.Time{}},
		{"joiner, future start", "", in(true, future, time.Time{}), store.StatePreHire, "joiner", future},
		{"joiner, not active", "", in(false, time.Time{}, time.Time{}), store.StatePreHire, "joiner", time.Time{}},
		{"joiner, not active, future start: waits for activation, not the date", "", in(false, future, time.Time{}), store.StatePreHire, "joiner", time.Time{}},
		{"joiner with an end date ahead", "", in(true, past, future), store.StateAwaitingMFA, "joiner", future},
		{"joiner already past its end date", "", in(true, past, past), store.StateTerminated, "joiner", time.Time{}},
		{"pre-hire reaches start", store.StatePreHire, in(true, past, time.Time{}), store.StateAwaitingMFA, "start", time.Time{}},
		{"pre-hire activated with no start", store.StatePreHire, in(true, time.Time{}, time.Time{}), store.StateAwaitingMFA, "start", time.Time{}},
		{"pre-hire before start", store.StatePreHire, in(true, future, time.Time{}), store.StatePreHire, "", future},
		{"pre-hire still inactive", store.StatePreHire, in(false, past, time.Time{}), store.StatePreHire, "", time.Time{}},
		{"pre-hire whose end passed", store.StatePreHire, in(true, future, past), store.StateTerminated, "leaver", time.Time{}},
		{"awaiting MFA deactivated", store.StateAwaitingMFA, in(false, past, time.Time{}), store.StateTerminated, "leaver", time.Time{}},
		{"active deactivated", store.StateActive, in(false, past, time.Time{}), store.StateTerminated, "leaver", time.Time{}},
		{"active reaches end date", store.StateActive, in(true, past, past), store.StateTerminated, "leaver", time.Time{}},
		{"active with a future end", store.StateActive, in(true, past, future), store.StateActive, "", future},
		{"mover keeps state", store.StateAwaitingMFA, in(true, past, time.Time{}), store.StateAwaitingMFA, "", time.Time{}},
		{"terminated stays while inactive", store.StateTerminated, in(false, past, time.Time{}), store.StateTerminated, "", time.Time{}},
		{"rehire", store.StateTerminated, in(true, past, time.Time{}), store.StateAwaitingMFA, "rehire", time.Time{}},
		{"rehire with a future start", store.StateTerminated, in(true, future, time.Time{}), store.StatePreHire, "rehire", future},
		{"no rehire past the end date", store.StateTerminated, in(true, past, past), store.StateTerminated, "", time.Time{}},
		{"delete", store.StateActive, gone, store.StateDeleted, "delete", time.Time{}},
		{"delete a leaver", store.StateTerminated, gone, store.StateDeleted, "delete", time.Time{}},
		{"deleted stays deleted", store.StateDeleted, gone, store.StateDeleted, "", time.Time{}},
	}
	for _, c := range cases {
		state, event := transition(c.prev, c.in, now)
		if state != c.state || event != c.event {
			t.Errorf("%s: got %s/%q, want %s/%q", c.name, state, event, c.state, c.event)
		}
		if got := nextCheck(state, c.in, now); !got.Equal(c.nextCheck) {
			t.Errorf("%s: nextCheck %v, want %v", c.name, got, c.nextCheck)
		}
	}
}

// No transition computed here ever reaches active: only proven MFA may.
func TestTransitionNeverGrantsActive(t *testing.T) {
	t.Parallel()
	states := []string{"", store.StatePreHire, store.StateAwaitingMFA, store.StateTerminated, store.StateDeleted}
	times := []time.Time{{}, past, future}
	for _, prev := range states {
		for _, active := range []bool{true, false} {
			for _, s := range times {
				for _, e := range times {
					for _, exists := range []bool{true, false} {
						state, _ := transition(prev, inputs{exists: exists, active: active, start: s, end: e}, now)
						if state == store.StateActive {
							t.Fatalf("%q + active=%v start=%v end=%v exists=%v → active without MFA", prev, active, s, e, exists)
						}
					}
				}
			}
		}
	}
}
