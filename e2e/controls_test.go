package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Over the wire, options.throttling.debounceMs holds a burst back until it has been quiet
// that long, then costs one getSnapshot and one apply. The bound checked is the one the
// debounce guarantees: no fetch before debounceMs after the last event was sent.
func TestThrottlingDebouncesABurstOverTheWire(t *testing.T) {
	const debounce = 1500 * time.Millisecond
	host := newFakeHost()
	host.set("doc", "0", `0`)
	c := start(t, host)
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "doc", "source": "host",
		"options": map[string]any{"throttling": map[string]any{"debounceMs": debounce.Milliseconds()}}})
	var fetchedAt time.Time
	host.mu.Lock()
	before := host.fetches["doc"]
	host.onApply = func(applyParams) { fetchedAt = time.Now() }
	host.mu.Unlock()

	host.set("doc", "5", `5`)
	var lastSent time.Time
	for i := 1; i <= 5; i++ {
		lastSent = time.Now()
		require.NoError(t, c.Notify("invalidate", map[string]string{"topic": "doc", "revision": fmt.Sprint(i)}))
	}
	host.waitFor(t, "revision 5 applied", func() bool { return host.lastApplied("w") == "5" })
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Equal(t, []string{"0", "5"}, host.applied["w"], "applies: the open's and one for the burst")
	require.Equal(t, 1, host.fetches["doc"]-before, "getSnapshot calls for the burst")
	require.GreaterOrEqual(t, fetchedAt.Sub(lastSent), debounce, "the burst was applied %v after its last event, want ≥ the debounce", fetchedAt.Sub(lastSent))
}

func TestThrottlingOptionsAreCheckedByName(t *testing.T) {
	c := start(t, newFakeHost())
	for _, tc := range []struct {
		throttling map[string]any
		want       string
	}{
		{map[string]any{"debounceMs": -1}, "options.throttling.debounceMs: got -1"},
		{map[string]any{"maxWaitMs": 100}, "options.throttling.maxWaitMs: got 100 with no debounceMs"},
		{map[string]any{"debounceMs": 200, "maxWaitMs": 100}, "shorter than debounceMs"},
		{map[string]any{"throttleMs": 100, "leading": false, "trailing": false}, "leading and trailing are both false"},
		{map[string]any{"throttle": 100}, "throttle: unknown member"},
		{map[string]any{"leading": "yes"}, "leading"},
	} {
		e := callErr(t, c, "channel.open", map[string]any{"channel": "w", "topic": "t", "source": "host", "options": map[string]any{"throttling": tc.throttling}})
		require.EqualValues(t, -32602, e.Code, "%v: %s", tc.throttling, e.Message)
		require.Contains(t, e.Message, tc.want, "%v", tc.throttling)
	}
}
