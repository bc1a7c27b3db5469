package rpc

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/store"
)

// Issue 15, the sidecar's side: revision-gated JSON Patch applies, selected paths, and
// state.patch. Each test reads as a rule of docs/protocol.md.

const deltaTopic = "big"

// leaf is the state of bigState with member changed holding v, every other member 0.
func leaf(changed, v int) json.RawMessage {
	return bigState(50, func(i int) string {
		if i == changed {
			return fmt.Sprint(v)
		}
		return "0"
	})
}

func openDeltas(h *windowHost, channel string, options map[string]any) map[string]any {
	h.t.Helper()
	params := map[string]any{"channel": channel, "topic": deltaTopic}
	if options != nil {
		params["options"] = options
	}
	return h.result("channel.open", params)
}

func TestInitializeAnnouncesDeltas(t *testing.T) {
	h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
	caps := h.result("initialize", map[string]any{"protocolVersion": "1"})["capabilities"].(map[string]any)
	require.Equal(t, map[string]any{"version": 1.0, "historyBytes": float64(DefaultDeltaHistoryBytes), "minSavingsRatio": 0.5}, caps["deltas"])

	// --delta-history-bytes 0: the capability stays, with no history.
	h = startWindowHost(t, Config{Store: store.NewMemory(1 << 20), DeltaHistoryBytes: -1})
	caps = h.result("initialize", map[string]any{"protocolVersion": "1"})["capabilities"].(map[string]any)
	require.Equal(t, 0.0, caps["deltas"].(map[string]any)["historyBytes"])
}

func TestChannelOpenChecksDeltaOptions(t *testing.T) {
	h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
	many := make([]string, MaxPaths+1)
	for i := range many {
		many[i] = fmt.Sprintf("/k%d", i)
	}
	for _, tc := range []struct {
		options map[string]any
		says    string
	}{
		{map[string]any{"deltas": "yes"}, "deltas"},
		{map[string]any{"paths": []string{}}, "want 1 to 64 JSON Pointers"},
		{map[string]any{"paths": many}, "got 65 pointers"},
		{map[string]any{"paths": []string{""}}, `options.paths[0]: "" is the whole document: leave paths out`},
		{map[string]any{"paths": []string{"/a", "settings"}}, `options.paths[1]: "settings" is not a JSON Pointer`},
		{map[string]any{"paths": []string{"/a~2b"}}, `"/a~2b" is not a JSON Pointer`},
		{map[string]any{"paths": []string{"/a", "/a"}}, `options.paths[1]: "/a" is listed twice`},
		{map[string]any{"paths": "/a"}, "paths"},
	} {
		answer := h.request("channel.open", map[string]any{"channel": "w", "topic": deltaTopic, "options": tc.options})
		code, message := errorOf(t, answer)
		require.EqualValues(t, -32602, code, "%v", tc.options)
		require.Contains(t, message, tc.says)
	}
	require.Empty(t, h.result("channel.list", nil)["channels"], "a refused open leaves no channel")
}

func TestAnApplyCarriesAPatchWhenTheWindowHoldsItsBase(t *testing.T) {
	h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
	h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 0)})
	require.Equal(t, "1", openDeltas(h, "w", map[string]any{"deltas": true})["localRevision"])
	first := h.appliesTo("w")
	require.Len(t, first, 1)
	require.Contains(t, first[0], "data", "the first apply after open is always full")

	h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 42)})
	w := h.waitWindow("w", "2")
	requireSameJSON(t, leaf(7, 42), w.data)
	applies := h.appliesTo("w")
	require.Len(t, applies, 2)
	delta := applies[1]
	require.NotContains(t, delta, "data")
	require.Equal(t, "1", delta["baseRevision"])
	require.Equal(t, []any{map[string]any{"op": "replace", "path": "/key007/value", "value": 42.0}}, delta["patch"])
	require.NotEmpty(t, delta["epoch"])

	h.waitLocalRevision("w", "2") // the sidecar has read the window's answer
	counters := h.status("w")["counters"].(map[string]any)
	require.Equal(t, map[string]any{"refreshes": counters["refreshes"], "applies": 2.0, "ignoredEvents": counters["ignoredEvents"], "errors": 0.0, "deltas": 1.0, "deltaRejections": 0.0}, counters)
}

func TestFullDataUnlessEveryRuleHolds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		options map[string]any
		next    json.RawMessage
	}{
		{"the channel did not opt in", Config{}, nil, leaf(7, 42)},
		{"the channel opted out", Config{}, map[string]any{"deltas": false}, leaf(7, 42)},
		{"the patch is not meaningfully smaller", Config{}, map[string]any{"deltas": true}, bigState(50, func(int) string { return fmt.Sprintf("%q", strings.Repeat("y", 100)) })},
		// 1.5 times the data: the target's entry pushes the base out of the history.
		{"the base is out of the history", Config{DeltaHistoryBytes: len(leaf(7, 0)) * 3 / 2}, map[string]any{"deltas": true}, leaf(7, 42)},
		{"--delta-history-bytes 0", Config{DeltaHistoryBytes: -1}, map[string]any{"deltas": true}, leaf(7, 42)},
		// A window reads a repeated name as its last member: a patch could miss that.
		{"the data has a member name twice", Config{}, map[string]any{"deltas": true}, json.RawMessage(strings.Replace(string(leaf(7, 42)), "{", `{"twice":1,"twice":2,`, 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Store = store.NewMemory(1 << 20)
			h := startWindowHost(t, tc.cfg)
			h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 0)})
			openDeltas(h, "w", tc.options)
			h.result("state.set", map[string]any{"topic": deltaTopic, "data": tc.next})
			w := h.waitWindow("w", "2")
			requireSameJSON(t, tc.next, w.data)
			applies := h.appliesTo("w")
			require.Len(t, applies, 2)
			require.Contains(t, applies[1], "data")
			require.NotContains(t, applies[1], "patch")
			require.NotContains(t, applies[1], "baseRevision")
			require.Zero(t, w.deltas)
		})
	}
}

// A deleted topic always goes as a full apply, and the next write after it too: the
// window holds no data to patch.
func TestADeletionIsAlwaysAFullApply(t *testing.T) {
	h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
	h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 0)})
	openDeltas(h, "w", map[string]any{"deltas": true})
	h.result("state.delete", map[string]any{"topic": deltaTopic})
	h.waitWindow("w", "2")
	h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 1)})
	h.waitWindow("w", "3")
	applies := h.appliesTo("w")
	require.Len(t, applies, 3)
	require.Equal(t, true, applies[1]["deleted"])
	require.Nil(t, applies[1]["data"])
	require.Contains(t, applies[2], "data")
}

// The mismatch path, on purpose: a window that lost its state answers -32011, and the
// sidecar sends the same revision in full at once; the window ends at the right state and
// the channel's next delta starts from that full apply.
func TestARejectedDeltaIsFollowedByTheFullDataAtOnce(t *testing.T) {
	for _, tc := range []struct {
		reason string
		tamper func(w *window, params map[string]any)
	}{
		{"baseMismatch", func(w *window, _ map[string]any) { w.revision = "0" }},
		{"patchFailed", func(w *window, _ map[string]any) { w.data = json.RawMessage(`{"other":true}`) }},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
			h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 0)})
			openDeltas(h, "w", map[string]any{"deltas": true})
			h.mu.Lock()
			tamper := tc.tamper
			h.tamper = func(w *window, p map[string]any) {
				tamper(w, p)
				h.tamper = nil // once
			}
			h.mu.Unlock()

			h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 1)})
			w := h.waitWindow("w", "2")
			requireSameJSON(t, leaf(7, 1), w.data)
			require.Equal(t, []string{tc.reason}, w.rejected)
			applies := h.appliesTo("w")
			require.Len(t, applies, 3)
			require.Contains(t, applies[1], "patch")
			require.Equal(t, "2", applies[2]["revision"])
			require.Contains(t, applies[2], "data", "the re-send is full")

			// Healed: the next change is a delta from the full apply.
			h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 2)})
			w = h.waitWindow("w", "3")
			requireSameJSON(t, leaf(7, 2), w.data)
			applies = h.appliesTo("w")
			require.Equal(t, "2", applies[3]["baseRevision"])

			h.waitLocalRevision("w", "3") // the sidecar has read the window's answer
			counters := h.status("w")["counters"].(map[string]any)
			require.Equal(t, 1.0, counters["deltaRejections"])
			require.Equal(t, 1.0, counters["deltas"])
			require.Equal(t, 0.0, counters["errors"], "a rejection heals without an error")
		})
	}
}

// Every channel at the same base gets the one patch, computed once.
func TestAPatchIsComputedOncePerBaseAndTarget(t *testing.T) {
	h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
	h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 0)})
	const n = 20
	for i := range n {
		openDeltas(h, fmt.Sprintf("w%d", i), map[string]any{"deltas": true})
	}
	h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 1)})
	for i := range n {
		w := h.waitWindow(fmt.Sprintf("w%d", i), "2")
		require.Equal(t, 1, w.deltas)
		requireSameJSON(t, leaf(7, 1), w.data)
	}
	hist := h.server.openTopic(deltaTopic).hist
	require.EqualValues(t, 1, hist.diffs.Load(), "one diff for %d channels", n)

	h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(8, 1)})
	for i := range n {
		h.waitWindow(fmt.Sprintf("w%d", i), "3")
	}
	require.EqualValues(t, 2, hist.diffs.Load())
}

// A paths channel gets the projection of the state on its pointers, an apply only when
// that changed, and its localRevision follows the topic's revisions.
func TestAPathsChannelGetsItsProjection(t *testing.T) {
	for _, deltas := range []bool{false, true} {
		t.Run(fmt.Sprintf("deltas %v", deltas), func(t *testing.T) {
			h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
			help := strings.Repeat("h", 200) // selected: makes the projection worth a patch
			state := func(theme string, count int, other string) json.RawMessage {
				return json.RawMessage(fmt.Sprintf(`{"settings":{"theme":%q,"font":"mono","sizes":[1,2],"help":%q},"items":[{"id":1}],"count":%d,"other":%q}`, theme, help, count, other))
			}
			h.result("state.set", map[string]any{"topic": deltaTopic, "data": state("dark", 1, "x")})
			open := openDeltas(h, "w", map[string]any{"deltas": deltas, "paths": []string{"/settings/theme", "/items/0/id", "/missing/x", "/settings/sizes/1", "/settings/help"}})
			require.Equal(t, "1", open["localRevision"])
			w := h.waitWindow("w", "1")
			// Selection stops at the first array: /items and /settings/sizes are kept whole.
			requireSameJSON(t, json.RawMessage(`{"settings":{"theme":"dark","sizes":[1,2],"help":"`+help+`"},"items":[{"id":1}]}`), w.data)

			// Not selected: no apply, but the channel holds the projection at revision 2.
			h.result("state.set", map[string]any{"topic": deltaTopic, "data": state("dark", 2, "y")})
			h.waitLocalRevision("w", "2")
			require.Len(t, h.appliesTo("w"), 1)

			h.result("state.set", map[string]any{"topic": deltaTopic, "data": state("light", 2, "y")})
			w = h.waitWindow("w", "3")
			requireSameJSON(t, json.RawMessage(`{"settings":{"theme":"light","sizes":[1,2],"help":"`+help+`"},"items":[{"id":1}]}`), w.data)
			applies := h.appliesTo("w")
			require.Len(t, applies, 2)
			if deltas {
				// From the revision the window applied, not the skipped one it never saw.
				require.Equal(t, "1", applies[1]["baseRevision"])
				require.Equal(t, []any{map[string]any{"op": "replace", "path": "/settings/theme", "value": "light"}}, applies[1]["patch"])
			} else {
				require.Contains(t, applies[1], "data")
			}
			h.waitLocalRevision("w", "3")
		})
	}
}

func TestStatePatch(t *testing.T) {
	h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
	blob := strings.Repeat("b", 200) // makes the state worth a patch
	h.result("state.set", map[string]any{"topic": "cfg", "data": map[string]any{"theme": "dark", "n": 1, "blob": blob}})
	get := func() map[string]any { return h.result("state.get", map[string]any{"topic": "cfg"}) }

	t.Run("applies the whole patch as the next revision", func(t *testing.T) {
		res := h.result("state.patch", map[string]any{"topic": "cfg", "patch": []any{
			map[string]any{"op": "test", "path": "/theme", "value": "dark"},
			map[string]any{"op": "replace", "path": "/theme", "value": "light"},
			map[string]any{"op": "add", "path": "/extra", "value": []int{1}},
		}})
		require.Equal(t, map[string]any{"topic": "cfg", "revision": "2"}, res)
		require.Equal(t, map[string]any{"theme": "light", "n": 1.0, "extra": []any{1.0}, "blob": blob}, get()["data"])
	})
	t.Run("is atomic: an operation that fails leaves everything as it was", func(t *testing.T) {
		answer := h.request("state.patch", map[string]any{"topic": "cfg", "patch": []any{
			map[string]any{"op": "replace", "path": "/theme", "value": "blue"},
			map[string]any{"op": "remove", "path": "/nope"},
		}})
		code, message := errorOf(t, answer)
		require.EqualValues(t, -32602, code)
		require.Contains(t, message, "operation 1")
		require.EqualValues(t, 1, answer["error"].(map[string]any)["data"].(map[string]any)["index"])
		require.Equal(t, "2", get()["revision"])
		require.Equal(t, "light", get()["data"].(map[string]any)["theme"])
	})
	t.Run("a failed test is the revision conflict", func(t *testing.T) {
		answer := h.request("state.patch", map[string]any{"topic": "cfg", "patch": []any{
			map[string]any{"op": "test", "path": "/theme", "value": "dark"},
			map[string]any{"op": "replace", "path": "/theme", "value": "blue"},
		}})
		code, _ := errorOf(t, answer)
		require.EqualValues(t, CodeRevisionConflict, code)
		data := answer["error"].(map[string]any)["data"].(map[string]any)
		require.Equal(t, "2", data["currentRevision"])
		require.Equal(t, "/theme", data["path"])
		require.Equal(t, "2", get()["revision"])
	})
	t.Run("expectedRevision is a compare-and-set", func(t *testing.T) {
		answer := h.request("state.patch", map[string]any{"topic": "cfg", "expectedRevision": "1", "patch": []any{map[string]any{"op": "replace", "path": "/n", "value": 2}}})
		code, _ := errorOf(t, answer)
		require.EqualValues(t, CodeRevisionConflict, code)
		require.Equal(t, "2", answer["error"].(map[string]any)["data"].(map[string]any)["currentRevision"])
		res := h.result("state.patch", map[string]any{"topic": "cfg", "expectedRevision": "2", "patch": []any{map[string]any{"op": "replace", "path": "/n", "value": 2}}})
		require.Equal(t, "3", res["revision"])
	})
	t.Run("an invalid patch is -32602", func(t *testing.T) {
		for _, patch := range []any{nil, map[string]any{"op": "add"}, []any{map[string]any{"op": "frobnicate", "path": "/n"}}, []any{map[string]any{"op": "add", "path": "n", "value": 1}}} {
			answer := h.request("state.patch", map[string]any{"topic": "cfg", "patch": patch})
			code, message := errorOf(t, answer)
			require.EqualValues(t, -32602, code, "%v: %s", patch, message)
		}
		require.Equal(t, "3", get()["revision"])
	})
	t.Run("a topic with no data cannot be patched", func(t *testing.T) {
		answer := h.request("state.patch", map[string]any{"topic": "never", "patch": []any{map[string]any{"op": "add", "path": "", "value": 1}}})
		code, message := errorOf(t, answer)
		require.EqualValues(t, -32602, code)
		require.Contains(t, message, "create it with state.set first")
	})
	t.Run("a window of the topic gets the change as a delta", func(t *testing.T) {
		h.result("channel.open", map[string]any{"channel": "w", "topic": "cfg", "options": map[string]any{"deltas": true}})
		h.waitWindow("w", "3")
		h.result("state.patch", map[string]any{"topic": "cfg", "patch": []any{map[string]any{"op": "replace", "path": "/theme", "value": "x"}}})
		w := h.waitWindow("w", "4")
		require.Equal(t, 1, w.deltas)
		require.Equal(t, []any{map[string]any{"op": "replace", "path": "/theme", "value": "x"}}, h.appliesTo("w")[1]["patch"])
		require.Zero(t, h.server.openTopic("cfg").hist.diffs.Load(), "the window got state.patch's own patch: no diff of the state")
		requireSameJSON(t, json.RawMessage(`{"theme":"x","n":2,"extra":[1],"blob":"`+blob+`"}`), w.data)
	})
}

// state.patch ends in state.set's durable write: what it answered is in the file.
func TestStatePatchIsDurableInTheFileStore(t *testing.T) {
	path := t.TempDir() + "/store.json"
	st, err := store.OpenFile(path, 1<<20)
	require.NoError(t, err)
	h := startWindowHost(t, Config{Store: st})
	h.result("state.set", map[string]any{"topic": "cfg", "data": map[string]any{"n": 1}})
	require.Equal(t, "2", h.result("state.patch", map[string]any{"topic": "cfg", "patch": []any{map[string]any{"op": "replace", "path": "/n", "value": 2}}})["revision"])
	require.NoError(t, st.Close())

	reopened, err := store.OpenFile(path, 1<<20)
	require.NoError(t, err)
	defer reopened.Close()
	snapshot, err := reopened.Get("cfg")
	require.NoError(t, err)
	require.EqualValues(t, "2", snapshot.Revision)
	requireSameJSON(t, json.RawMessage(`{"n":2}`), snapshot.Data)
}

// The history holds at most its bound of data, dropping the oldest revisions first, and
// its cache of patches and projections at most the same again.
func TestTheHistoryIsBoundedInBytes(t *testing.T) {
	h := newHistory(1000)
	data := func(i int) engine.Snapshot {
		return engine.Snapshot{Revision: engine.Revision(fmt.Sprint(i)), Epoch: "e", Data: json.RawMessage(fmt.Sprintf(`{"v":%d,"pad":%q}`, i, strings.Repeat("p", 280)))}
	}
	for i := 1; i <= 10; i++ {
		require.True(t, h.remember(data(i)))
		require.LessOrEqual(t, h.bytes, 1000)
	}
	require.Nil(t, h.get(revKey{"e", "1"}), "the oldest went first")
	require.NotNil(t, h.get(revKey{"e", "10"}))
	require.NotNil(t, h.get(revKey{"e", "8"}))

	for i := 9; i >= 1; i-- {
		_, _ = h.patch(deltaOptions{}, "e", engine.Revision(fmt.Sprint(i)), "10", data(10).Data)
	}
	require.EqualValues(t, 2, h.diffs.Load(), "from the bases still held: 8 and 9")
	big := json.RawMessage(`[{"op":"add","path":"/x","value":"` + strings.Repeat("y", 400) + `"}]`)
	for i := 20; i < 25; i++ {
		h.seed("e", engine.Revision(fmt.Sprint(i)), engine.Revision(fmt.Sprint(i+1)), big, true)
		require.LessOrEqual(t, h.dbytes, 1000)
	}
	require.Positive(t, h.dbytes)
	require.False(t, h.remember(engine.Snapshot{Revision: "11", Epoch: "e", Data: json.RawMessage(`"` + strings.Repeat("x", 1001) + `"`)}), "data over the bound is never kept")

	// Two different data under one revision: neither is a base or a target any more.
	require.True(t, h.remember(data(12)))
	other := data(12)
	other.Data = json.RawMessage(`{"v":"other"}`)
	require.False(t, h.remember(other))
	require.False(t, h.remember(data(12)))
	require.Nil(t, h.get(revKey{"e", "12"}))
}

// Source "channel": each channel's owner answers for it alone, so two channels of one
// topic may hold different data at one revision; each has its own history, and each
// window gets the patch from its own data.
func TestChannelSourcedTopicsKeepAHistoryPerChannel(t *testing.T) {
	h := startWindowHost(t, Config{DefaultSource: SourceChannel})
	revision := "1"
	h.snapshot = func(_, channel string) string { // called with h.mu held
		return fmt.Sprintf(`{"revision":%q,"data":%s}`, revision, leaf(7, len(channel)*100+map[string]int{"1": 0, "2": 1}[revision]))
	}
	openDeltas(h, "a", map[string]any{"deltas": true})
	openDeltas(h, "bb", map[string]any{"deltas": true})
	h.mu.Lock()
	revision = "2"
	h.mu.Unlock()
	for _, ch := range []string{"a", "bb"} {
		h.result("invalidate", map[string]any{"topic": deltaTopic, "revision": "2", "channel": ch})
	}
	requireSameJSON(t, leaf(7, 101), h.waitWindow("a", "2").data)
	requireSameJSON(t, leaf(7, 201), h.waitWindow("bb", "2").data)
	require.Equal(t, 1, h.waitWindow("a", "2").deltas)
	require.Equal(t, 1, h.waitWindow("bb", "2").deltas)
	require.Nil(t, h.server.openTopic(deltaTopic).hist, "no history shared by the topic's channels")
}

// state.patch's result is scanned for a repeated member name only when the patch could
// have brought one: Apply repeats no name that its document and values did not, so a
// patched revision inherits its base's check instead of a scan of the whole state.
func TestStatePatchInheritsItsBasesNameCheck(t *testing.T) {
	h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
	h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 0)})
	openDeltas(h, "w", map[string]any{"deltas": true})
	h.waitWindow("w", "1")
	for i, rev := range []string{"2", "3", "4"} {
		h.result("state.patch", map[string]any{"topic": deltaTopic, "patch": []any{map[string]any{"op": "replace", "path": "/key007/value", "value": i + 1}}})
		h.waitWindow("w", rev)
	}
	hist := h.server.openTopic(deltaTopic).hist
	require.Equal(t, 3, h.waitWindow("w", "4").deltas)
	require.EqualValues(t, 1, hist.scans.Load(), "only revision 1, state.set's data, was scanned")

	// A value with a name twice: the revision is scanned, and goes in full.
	twice := json.RawMessage(`[{"op":"add","path":"/key007/extra","value":{"twice":1,"twice":2}}]`)
	h.result("state.patch", map[string]any{"topic": deltaTopic, "patch": twice})
	w := h.waitWindow("w", "5")
	require.EqualValues(t, 2, hist.scans.Load())
	require.Equal(t, 3, w.deltas)
	require.Contains(t, h.appliesTo("w")[4], "data")

	// From there on the state repeats a name: every revision patched from it goes in
	// full, whatever its patch, as the base's check says.
	h.result("state.patch", map[string]any{"topic": deltaTopic, "patch": []any{map[string]any{"op": "replace", "path": "/key007/value", "value": 9}}})
	w = h.waitWindow("w", "6")
	require.Equal(t, 3, w.deltas)
	require.Contains(t, h.appliesTo("w")[5], "data")
}

// Once the topic's delta channels have had a revision, the history knows whether its
// names repeat: a patch on it then stops each scan at the first match, and only then.
func TestStatePatchStopsAtTheFirstMatchOnlyWhereNamesAreKnownUnique(t *testing.T) {
	h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
	uniqueScans := func() int {
		h.server.patched.mu.Lock()
		defer h.server.patched.mu.Unlock()
		return h.server.patched.unique
	}
	patch := func(raw string) {
		h.result("state.patch", map[string]any{"topic": deltaTopic, "patch": json.RawMessage(raw)})
	}
	h.result("state.set", map[string]any{"topic": deltaTopic, "data": leaf(7, 0)})
	patch(`[{"op":"replace","path":"/key007/value","value":1}]`)
	require.Zero(t, uniqueScans(), "no delta channel: no history knows the names")

	openDeltas(h, "w", map[string]any{"deltas": true})
	h.waitWindow("w", "2")
	patch(`[{"op":"replace","path":"/key007/value","value":2}]`)
	require.Zero(t, uniqueScans(), "revision 2 went to the window in full: its names were never checked")
	h.waitWindow("w", "3")
	patch(`[{"op":"replace","path":"/key007/value","value":3}]`)
	require.Equal(t, 1, uniqueScans(), "revision 3 went as a patch, its names checked")
	h.waitWindow("w", "4")

	// A value with a name twice: that revision repeats a name, and the patch on it reads
	// every object whole, as a repeated name needs (the last one counts).
	patch(`[{"op":"add","path":"/key007/extra","value":{"twice":1,"twice":2}}]`)
	require.Equal(t, 2, uniqueScans(), "revision 4 repeated no name")
	h.waitWindow("w", "5")
	patch(`[{"op":"replace","path":"/key007/value","value":4}]`)
	require.Equal(t, 2, uniqueScans(), "revision 5 repeats a name")
	w := h.waitWindow("w", "6")
	got, err := json.Marshal(h.result("state.get", map[string]any{"topic": deltaTopic})["data"])
	require.NoError(t, err)
	requireSameJSON(t, w.data, got)
	require.Contains(t, string(w.data), `"extra":{"twice":1,"twice":2}`)
}

// A patch on the very data the last patch wrote skips Apply's validation pass; data from
// state.set (kept as sent, spaces and all) is always read whole first.
func TestStatePatchTrustsOnlyItsOwnOutput(t *testing.T) {
	h := startWindowHost(t, Config{Store: store.NewMemory(1 << 20)})
	set := func(raw string) { h.result("state.set", map[string]any{"topic": "cfg", "data": json.RawMessage(raw)}) }
	patch := func(path string, v any) {
		h.result("state.patch", map[string]any{"topic": "cfg", "patch": []any{map[string]any{"op": "replace", "path": path, "value": v}}})
	}
	requireData := func(want string) {
		t.Helper()
		got, err := json.Marshal(h.result("state.get", map[string]any{"topic": "cfg"})["data"])
		require.NoError(t, err)
		requireSameJSON(t, json.RawMessage(want), got)
	}
	trusted := func() int {
		h.server.patched.mu.Lock()
		defer h.server.patched.mu.Unlock()
		return h.server.patched.hits
	}
	set(`{ "a" : [ 1 , 2 ] , "b" : { "c" : "d" } }`)
	patch("/a/1", 3)
	require.Zero(t, trusted(), "state.set's data is read whole")
	patch("/b/c", "e")
	require.Equal(t, 1, trusted())
	requireData(`{"a":[1,3],"b":{"c":"e"}}`)
	set(`{ "a" : [ 1 , 2 ] , "b" : { "c" : "d" } }`)
	patch("/b/c", "f")
	require.Equal(t, 1, trusted(), "state.set's data is read whole")
	patch("/a/0", 0)
	require.Equal(t, 2, trusted())
	requireData(`{"a":[0,2],"b":{"c":"f"}}`)
}
