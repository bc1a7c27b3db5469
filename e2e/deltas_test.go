package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/internal/jsonpatch"
	"github.com/state-sync/state-sync/sidecar"
)

// Deltas (issue 15) over the real binary: windows that take patches as the SDK does, the
// bytes an apply costs, the -32011 path, selected paths and state.patch.

// deltaWindows is a host whose windows keep their last applied data per channel and take
// an apply with a patch only on top of the revision it names, answering -32011 otherwise.
type deltaWindows struct {
	mu      sync.Mutex
	changed chan struct{}
	state   map[string]snapshot // host-sourced topics
	windows map[string]*deltaWindow
	// forget, when set for a channel, makes its window lose its state before the next
	// delta (once): the mismatch path, on purpose.
	forget map[string]bool
	frames *frameLog
}

type deltaWindow struct {
	revision string
	data     json.RawMessage
	deltas   int
	full     int
	rejected int
}

func newDeltaWindows() *deltaWindows {
	return &deltaWindows{changed: make(chan struct{}), state: map[string]snapshot{}, windows: map[string]*deltaWindow{}, forget: map[string]bool{}, frames: &frameLog{}}
}

func (h *deltaWindows) HandleRequest(_ context.Context, method string, params json.RawMessage) (any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch method {
	case "getSnapshot":
		var p struct{ Topic string }
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		return h.state[p.Topic], nil
	case "apply":
		var p struct {
			Channel      string          `json:"channel"`
			Revision     string          `json:"revision"`
			Data         json.RawMessage `json:"data"`
			BaseRevision *string         `json:"baseRevision"`
			Patch        json.RawMessage `json:"patch"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		defer func() {
			close(h.changed)
			h.changed = make(chan struct{})
		}()
		w := h.windows[p.Channel]
		if w == nil {
			w = &deltaWindow{}
			h.windows[p.Channel] = w
		}
		if p.BaseRevision == nil {
			w.revision, w.data = p.Revision, p.Data
			w.full++
			return map[string]any{}, nil
		}
		if h.forget[p.Channel] {
			delete(h.forget, p.Channel)
			w.revision, w.data = "", nil
		}
		reject := func(reason string) error {
			w.rejected++
			data, _ := json.Marshal(map[string]string{"reason": reason})
			return &sidecar.RPCError{Code: -32011, Message: "delta rejected: " + reason, Data: data}
		}
		if w.data == nil || w.revision != *p.BaseRevision {
			return nil, reject("baseMismatch")
		}
		ops, err := jsonpatch.DecodePatch(p.Patch)
		if err != nil {
			return nil, reject("patchFailed")
		}
		next, err := jsonpatch.Apply(w.data, ops)
		if err != nil {
			return nil, reject("patchFailed")
		}
		w.revision, w.data = p.Revision, next
		w.deltas++
		return map[string]any{}, nil
	}
	return nil, &sidecar.RPCError{Code: -32601, Message: "unexpected method " + method}
}

func (h *deltaWindows) HandleNotification(string, json.RawMessage) {}

// waitAll waits until every channel's window is at revision.
func (h *deltaWindows) waitAll(t *testing.T, revision string, channels ...string) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		h.mu.Lock()
		done := true
		for _, ch := range channels {
			if w := h.windows[ch]; w == nil || w.revision != revision {
				done = false
			}
		}
		changed := h.changed
		h.mu.Unlock()
		if done {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("windows did not all reach revision %s within %v", revision, testTimeout)
		}
	}
}

func (h *deltaWindows) window(channel string) deltaWindow {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.windows[channel]
}

func startDeltas(t *testing.T, h *deltaWindows, args ...string) *sidecar.Client {
	t.Helper()
	c, err := sidecar.Start(context.Background(), sidecar.Options{Path: binary, Args: args, Handler: h, Stderr: os.Stderr, Record: h.frames})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(5 * time.Second) })
	return c
}

// largeState is a JSON object of about size bytes: 1 KiB members, member i holding n at
// "/m<i>/n".
func largeState(size, changed, n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range size / 1024 {
		if i > 0 {
			b.WriteByte(',')
		}
		v := 0
		if i == changed {
			v = n
		}
		fmt.Fprintf(&b, `"m%d":{"n":%d,"pad":%q}`, i, v, strings.Repeat("p", 1000))
	}
	b.WriteByte('}')
	return b.String()
}

// applyFrames returns the apply frames the sidecar sent for revision.
func applyFrames(frames []string, revision string) []string {
	var out []string
	for _, f := range frames {
		if strings.Contains(f, `"method":"apply"`) && strings.Contains(f, `"revision":"`+revision+`"`) {
			out = append(out, f)
		}
	}
	return out
}

// One leaf of a 256 KiB store topic changed by state.patch reaches every window as a patch
// of well under 1 KiB; a window that lost its state on the way answers -32011 and gets
// the full data at once; every window ends at the store's state.
func TestDeltasOverTheWire(t *testing.T) {
	h := newDeltaWindows()
	c := startDeltas(t, h)
	const size = 256 << 10
	stateSet(t, c, "big", json.RawMessage(largeState(size, -1, 0)))
	var channels []string
	for i := range 10 {
		name := fmt.Sprintf("w%d", i)
		channels = append(channels, name)
		call(t, c, "channel.open", map[string]any{"channel": name, "topic": "big", "options": map[string]any{"deltas": true}})
	}
	h.mu.Lock()
	h.forget["w3"] = true
	h.mu.Unlock()

	res := call(t, c, "state.patch", map[string]any{"topic": "big", "patch": []any{map[string]any{"op": "replace", "path": "/m7/n", "value": 42}}})
	require.JSONEq(t, `{"topic":"big","revision":"2"}`, string(res))
	h.waitAll(t, "2", channels...)

	want := stateGet(t, c, "big")
	for _, ch := range channels {
		w := h.window(ch)
		require.JSONEq(t, string(want.Data), string(w.data), "window %s", ch)
	}
	require.Equal(t, 1, h.window("w3").rejected)
	require.Equal(t, 0, h.window("w3").deltas, "its re-send was full")
	require.Equal(t, 1, h.window("w4").deltas)

	frames := applyFrames(h.frames.all(), "2")
	var small, large int
	for _, f := range frames {
		if len(f) < 1024 {
			small++
		} else {
			require.Greater(t, len(f), size, "a full apply")
			large++
		}
	}
	require.Equal(t, 10, small, "10 deltas, one of them rejected: %d frames", len(frames))
	require.Equal(t, 1, large, "the rejected one's full re-send")

	var st struct {
		LocalRevision string         `json:"localRevision"`
		Counters      map[string]int `json:"counters"`
	}
	// The counters move once the sidecar has read the windows' answers: wait for that.
	for _, ch := range []string{"w3", "w4"} {
		deadline := time.Now().Add(testTimeout)
		for st.LocalRevision = ""; st.LocalRevision != "2" && time.Now().Before(deadline); {
			require.NoError(t, json.Unmarshal(call(t, c, "channel.status", map[string]any{"channel": ch}), &st))
		}
	}
	require.NoError(t, json.Unmarshal(call(t, c, "channel.status", map[string]any{"channel": "w3"}), &st))
	require.Equal(t, 1, st.Counters["deltaRejections"])
	require.Equal(t, 0, st.Counters["deltas"])
	require.NoError(t, json.Unmarshal(call(t, c, "channel.status", map[string]any{"channel": "w4"}), &st))
	require.Equal(t, 1, st.Counters["deltas"])

	// A failed test operation is the revision conflict, with where it failed.
	rpcErr := callErr(t, c, "state.patch", map[string]any{"topic": "big", "patch": []any{map[string]any{"op": "test", "path": "/m7/n", "value": 0}}})
	require.EqualValues(t, -32005, rpcErr.Code)
	require.JSONEq(t, `{"currentRevision":"2","path":"/m7/n","index":0}`, string(rpcErr.Data))
}

// A host topic: the channel with paths gets its projection, and only when it changed;
// with --delta-history-bytes 0 every apply is full.
func TestHostTopicPathsAndTheHistoryFlag(t *testing.T) {
	for _, history := range []string{"", "0"} {
		t.Run("history "+history, func(t *testing.T) {
			h := newDeltaWindows()
			args := []string{"--default-source", "host"}
			if history != "" {
				args = append(args, "--delta-history-bytes", history)
			}
			c := startDeltas(t, h, args...)
			pad := strings.Repeat("p", 500)
			state := func(theme string, other int) json.RawMessage {
				return json.RawMessage(fmt.Sprintf(`{"ui":{"theme":%q,"help":%q},"other":%d,"blob":%q}`, theme, pad, other, pad))
			}
			h.mu.Lock()
			h.state["s"] = snapshot{Revision: "1", Data: state("dark", 0)}
			h.mu.Unlock()
			call(t, c, "channel.open", map[string]any{"channel": "all", "topic": "s", "options": map[string]any{"deltas": true}})
			call(t, c, "channel.open", map[string]any{"channel": "ui", "topic": "s", "options": map[string]any{"deltas": true, "paths": []string{"/ui"}}})
			require.JSONEq(t, fmt.Sprintf(`{"ui":{"theme":"dark","help":%q}}`, pad), string(h.window("ui").data))

			set := func(rev string, data json.RawMessage) {
				h.mu.Lock()
				h.state["s"] = snapshot{Revision: rev, Data: data}
				h.mu.Unlock()
				call(t, c, "invalidate", map[string]any{"topic": "s", "revision": rev})
			}
			set("2", state("dark", 1)) // not under /ui
			h.waitAll(t, "2", "all")
			var st struct {
				LocalRevision string `json:"localRevision"`
			}
			deadline := time.Now().Add(testTimeout)
			for st.LocalRevision != "2" && time.Now().Before(deadline) {
				require.NoError(t, json.Unmarshal(call(t, c, "channel.status", map[string]any{"channel": "ui"}), &st))
			}
			require.Equal(t, "2", st.LocalRevision, "the projection at 2 is the one the window holds")
			require.Equal(t, "1", h.window("ui").revision, "nothing was sent to it")

			set("3", state("light", 1))
			h.waitAll(t, "3", "all", "ui")
			require.JSONEq(t, fmt.Sprintf(`{"ui":{"theme":"light","help":%q}}`, pad), string(h.window("ui").data))
			require.JSONEq(t, string(state("light", 1)), string(h.window("all").data))
			if history == "0" {
				require.Zero(t, h.window("all").deltas)
				require.Zero(t, h.window("ui").deltas)
			} else {
				require.Equal(t, 2, h.window("all").deltas)
				require.Equal(t, 1, h.window("ui").deltas)
			}
		})
	}
}

// state.patch ends in state.set's durable write: killed (SIGKILL) in the middle of a
// stream of patches from several goroutines, each appending one entry to a log, the
// sidecar restarted on the same file holds every acknowledged entry, once each, only
// entries that were sent, and one revision per entry (every patch whole or not at all).
func TestStatePatchSurvivesKill9(t *testing.T) {
	const (
		rounds  = 3
		writers = 4
	)
	path := t.TempDir() + "/state.json"
	c := start(t, newFakeHost(), "--store-file", path)
	stateSet(t, c, "log", json.RawMessage(`{"entries":[]}`))
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	verify := func(round int) {
		t.Helper()
		got := stateGet(t, c, "log")
		var doc struct {
			Entries []string `json:"entries"`
		}
		require.NoError(t, json.Unmarshal(got.Data, &doc), "round %d: %s", round, got.Data)
		seen := map[string]bool{}
		for _, e := range doc.Entries {
			require.False(t, seen[e], "round %d: entry %s twice", round, e)
			seen[e] = true
		}
		require.Equal(t, fmt.Sprint(1+len(doc.Entries)), got.Revision, "round %d: one revision per patch, each whole", round)
		mu.Lock()
		defer mu.Unlock()
		for e := range acked {
			require.True(t, seen[e], "round %d: acknowledged entry %s lost", round, e)
		}
	}
	for round := range rounds {
		verify(round)
		ctx := testContext(t)
		var (
			wg     sync.WaitGroup
			acks   atomic.Int64
			once   sync.Once
			enough = make(chan struct{})
		)
		killAfter := int64(10 + 10*round)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := 0; seq < 10000; seq++ {
					entry := fmt.Sprintf("r%d-w%d-%d", round, w, seq)
					patch := []any{map[string]any{"op": "add", "path": "/entries/-", "value": entry}}
					if err := c.Call(ctx, "state.patch", map[string]any{"topic": "log", "patch": patch}, nil); err != nil {
						return // killed: unacknowledged
					}
					mu.Lock()
					acked[entry] = true
					mu.Unlock()
					if acks.Add(1) == killAfter {
						once.Do(func() { close(enough) })
					}
				}
			}()
		}
		select {
		case <-enough:
		case <-time.After(testTimeout):
			t.Fatalf("round %d: too few patches acknowledged in %s", round, testTimeout)
		}
		c.Kill()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Fatalf("round %d: writers still blocked after the kill", round)
		}
		c = start(t, newFakeHost(), "--store-file", path)
	}
	verify(rounds)
}
