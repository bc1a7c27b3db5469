package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
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

// options.throttling.throttleMs: every refresh opens a window, the open's first too, so a
// burst right after the open waits for the window to end, then costs one trailing refresh.
func TestThrottlingThrottlesABurstOverTheWire(t *testing.T) {
	const throttle = time.Second
	host := newFakeHost()
	host.set("doc", "0", `0`)
	c := start(t, host)
	var appliedAt time.Time
	host.mu.Lock()
	host.onApply = func(applyParams) { appliedAt = time.Now() }
	host.mu.Unlock()
	opening := time.Now() // the open's refresh, and its window, begin after this
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "doc", "source": "host",
		"options": map[string]any{"throttling": map[string]any{"throttleMs": throttle.Milliseconds()}}})
	host.mu.Lock()
	before := host.fetches["doc"]
	host.mu.Unlock()
	host.set("doc", "3", `3`)
	for i := 1; i <= 3; i++ {
		require.NoError(t, c.Notify("invalidate", map[string]string{"topic": "doc", "revision": fmt.Sprint(i)}))
	}
	host.waitFor(t, "revision 3 applied", func() bool { return host.lastApplied("w") == "3" })
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Equal(t, []string{"0", "3"}, host.applied["w"])
	require.Equal(t, 1, host.fetches["doc"]-before, "getSnapshot calls for the burst")
	require.GreaterOrEqual(t, appliedAt.Sub(opening), throttle, "the trailing refresh came %v after the open began, want ≥ the throttle", appliedAt.Sub(opening))
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

type deleteResult struct {
	Topic    string `json:"topic"`
	Revision string `json:"revision"`
}

type storeGetDeleted struct {
	Revision string          `json:"revision"`
	Data     json.RawMessage `json:"data"`
	Deleted  bool            `json:"deleted"`
}

// state.delete over the wire: every open channel of the topic is applied the deletion as
// the next revision, data null and deleted true; state.get answers it without data; the
// next write goes on from it and is applied; a stale expectedRevision is -32005.
func TestStateDeleteReachesEveryOpenChannel(t *testing.T) {
	host := newFakeHost()
	applies := recordApplies(host)
	c := start(t, host)
	require.Equal(t, "1", stateSet(t, c, "doc", map[string]int{"n": 1}))
	for _, w := range []string{"a", "b"} {
		call(t, c, "channel.open", map[string]any{"channel": w, "topic": "doc", "source": "store"})
	}

	e := callErr(t, c, "state.delete", map[string]any{"topic": "doc", "expectedRevision": "0"})
	require.EqualValues(t, -32005, e.Code, e.Message)
	require.JSONEq(t, `{"currentRevision":"1"}`, string(e.Data))

	var res deleteResult
	require.NoError(t, json.Unmarshal(call(t, c, "state.delete", map[string]any{"topic": "doc", "expectedRevision": "1"}), &res))
	require.Equal(t, deleteResult{Topic: "doc", Revision: "2"}, res)
	host.waitFor(t, "both channels applied the deletion", func() bool {
		return host.lastApplied("a") == "2" && host.lastApplied("b") == "2"
	})
	host.mu.Lock()
	for _, w := range []string{"a", "b"} {
		last := applies[w][len(applies[w])-1]
		require.True(t, last.Deleted, "channel %s: apply of the deletion without deleted: true", w)
		require.Equal(t, "null", string(last.Data), "channel %s: data of the deletion", w)
	}
	host.mu.Unlock()

	var got storeGetDeleted
	require.NoError(t, json.Unmarshal(call(t, c, "state.get", map[string]any{"topic": "doc"}), &got))
	require.Equal(t, storeGetDeleted{Revision: "2", Deleted: true}, got)

	// A second delete writes nothing, tells no channel, and answers the same revision.
	require.NoError(t, json.Unmarshal(call(t, c, "state.delete", map[string]any{"topic": "doc"}), &res))
	require.Equal(t, "2", res.Revision)

	require.Equal(t, "3", stateSet(t, c, "doc", map[string]int{"n": 3}))
	host.waitFor(t, "both channels applied the write after the deletion", func() bool {
		return host.lastApplied("a") == "3" && host.lastApplied("b") == "3"
	})
	host.mu.Lock()
	require.Equal(t, []string{"1", "2", "3"}, host.applied["a"])
	host.mu.Unlock()

	e = callErr(t, c, "state.delete", map[string]any{"topic": "doc", "expectedRevison": "3"})
	require.EqualValues(t, -32602, e.Code)
	require.Contains(t, e.Message, "expectedRevison")
	e = callErr(t, c, "state.delete", map[string]any{"topic": "doc", "expectedRevision": "03"})
	require.EqualValues(t, -32602, e.Code)
	require.Contains(t, e.Message, "expectedRevision")

	host.set("hosted", "1", `1`)
	call(t, c, "channel.open", map[string]any{"channel": "h", "topic": "hosted", "source": "host"})
	e = callErr(t, c, "state.delete", map[string]any{"topic": "hosted"})
	require.EqualValues(t, -32004, e.Code, e.Message)
}

// The deletion is durable when answered: a kill -9 right after the answer loses nothing,
// and the restarted sidecar serves the tombstone to a late joiner, then goes on from it.
func TestStateDeleteSurvivesKill9WithTheFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.json")
	c := start(t, newFakeHost(), "--store-file", path)
	stateSet(t, c, "doc", "v1")
	stateSet(t, c, "kept", "k")
	call(t, c, "state.delete", map[string]any{"topic": "doc"})
	c.Kill()

	host := newFakeHost()
	applies := recordApplies(host)
	c = start(t, host, "--store-file", path)
	var got storeGetDeleted
	require.NoError(t, json.Unmarshal(call(t, c, "state.get", map[string]any{"topic": "doc"}), &got))
	require.Equal(t, storeGetDeleted{Revision: "2", Deleted: true}, got)
	require.Equal(t, "1", stateGet(t, c, "kept").Revision)
	call(t, c, "channel.open", map[string]any{"channel": "late", "topic": "doc"})
	host.mu.Lock()
	require.Len(t, applies["late"], 1)
	require.True(t, applies["late"][0].Deleted, "a late joiner learns the topic is deleted")
	host.mu.Unlock()
	require.Equal(t, "3", stateSet(t, c, "doc", "v3"))
}
