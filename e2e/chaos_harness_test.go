package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/internal/chaos"
	"github.com/state-sync/state-sync/sidecar"
)

// The chaos host's own rules, checked without a sidecar: frames are fed to its recorder
// and notification handler in the order a run would see them. Both cases below once made
// TestChaos report violations the sidecar did not commit (seed 1796405605980123568).

// newHarnessHost is a chaos host with one open channel c1 on topic host-0, and no sidecar.
func newHarnessHost(t *testing.T) (*chaosHost, *chaosChan) {
	h := newChaosHost(t, chaos.Settings{Seed: 1796405605980123568, Events: 1, Duration: 1})
	cc := &chaosChan{name: "c1", topic: h.topics[0], state: "open", opened: make(chan struct{})}
	h.chans[cc.name] = cc
	h.order = append(h.order, cc)
	return h, cc
}

func (h *chaosHost) feed(t *testing.T, lines ...string) {
	t.Helper()
	for _, line := range lines {
		_, err := chaosRecorder{h}.Write([]byte(line + "\n"))
		require.NoError(t, err)
	}
}

func harnessApply(id, rev int) string {
	return `<- {"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"apply","params":{"channel":"c1","topic":"host-0","revision":"` + strconv.Itoa(rev) + `","epoch":"e0","data":{}}}`
}

// settleAtExit is what exit does once the sidecar is gone.
func (h *chaosHost) settleAtExit() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cc := range h.order {
		h.settleLocked(cc)
	}
	return h.violations
}

func TestChaosHarnessApplyInFlight(t *testing.T) {
	closeAnswered := []string{
		`-> {"id":9,"jsonrpc":"2.0","method":"channel.close","params":{"channel":"c1"}}`,
		`<- {"id":9,"result":{"channel":"c1","localRevision":"2"},"jsonrpc":"2.0"}`,
	}
	for _, tc := range []struct {
		name      string
		lines     []string
		timeout   int // an apply timeout notification for this revision, after the lines; 0: none
		violation string
	}{
		{
			// Stop cancels the apply and reports nothing (docs/lifecycle.md); the host's
			// late answer is never written when the sidecar exits first.
			name:  "cancelled by the close, never answered",
			lines: append([]string{harnessApply(7, 3)}, closeAnswered...),
		},
		{
			name:  "answered, then closed",
			lines: append([]string{harnessApply(7, 3), `-> {"id":7,"result":{"ok":true},"jsonrpc":"2.0"}`}, closeAnswered...),
		},
		{
			name:    "timed out and reported, then the next apply",
			lines:   []string{harnessApply(7, 3)},
			timeout: 3,
		},
		{
			name:      "the next apply while the first is unanswered",
			lines:     []string{harnessApply(7, 3), harnessApply(8, 4), `-> {"id":8,"result":{"ok":true},"jsonrpc":"2.0"}`},
			violation: "c1: apply of revision 3 was neither answered, nor reported timed out, nor cancelled by its channel's close when the next one came or the sidecar exited: two applies in flight, or one lost",
		},
		{
			name:      "unanswered at exit on a channel never closed",
			lines:     []string{harnessApply(7, 3)},
			violation: "c1: apply of revision 3 was neither answered, nor reported timed out, nor cancelled by its channel's close when the next one came or the sidecar exited: two applies in flight, or one lost",
		},
		{
			// A close answered later does not excuse a second apply read before it.
			name:      "a second apply before the close answer",
			lines:     append([]string{harnessApply(7, 3), harnessApply(8, 4)}, closeAnswered...),
			violation: "c1: apply of revision 3 was neither answered, nor reported timed out, nor cancelled by its channel's close when the next one came or the sidecar exited: two applies in flight, or one lost",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newHarnessHost(t)
			h.feed(t, tc.lines...)
			if tc.timeout > 0 {
				h.HandleNotification("error", []byte(`{"phase":"apply","channel":"c1","topic":"host-0","error":{"message":"the host did not answer apply within the call timeout (250ms): context deadline exceeded"},"snapshotRevision":"`+strconv.Itoa(tc.timeout)+`"}`))
				h.feed(t, harnessApply(8, tc.timeout+1), `-> {"id":8,"result":{"ok":true},"jsonrpc":"2.0"}`)
			}
			violations := h.settleAtExit()
			if tc.violation == "" {
				require.Empty(t, violations)
				return
			}
			require.Equal(t, []string{tc.violation}, violations)
		})
	}
}

// TestChaosHarnessFinalStoreWriteWins: the final write of a store topic always takes a
// revision, or it would invalidate nothing; the chaos writes still lose now and then.
func TestChaosHarnessFinalStoreWriteWins(t *testing.T) {
	h, _ := newHarnessHost(t)
	tp := h.topics[4]
	require.Equal(t, "store", tp.source)
	tp.rev = 5
	h.mu.Lock()
	defer h.mu.Unlock()
	lost := 0
	for range 200 {
		if rev, ok := h.writeParamsLocked(tp, false)["expectedRevision"]; ok && rev != "5" {
			lost++
		}
		if rev, ok := h.writeParamsLocked(tp, true)["expectedRevision"]; ok {
			require.Equal(t, "5", rev, "a final write that would lose its compare-and-set")
		}
	}
	require.Positive(t, lost, "the chaos writes no compare-and-set that loses any more")
}

func harnessFrame(id, rev int, epoch, body string) string {
	return `<- {"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"apply","params":{"channel":"c1","topic":"host-0","revision":"` + strconv.Itoa(rev) + `","epoch":"` + epoch + `",` + body + `}}`
}

func harnessFull(id, rev int) string { return harnessFrame(id, rev, "e0", `"data":{}`) }

func harnessDelta(id, rev, base int) string {
	return harnessFrame(id, rev, "e0", `"baseRevision":"`+strconv.Itoa(base)+`","patch":[]`)
}

func harnessOK(id int) string {
	return `-> {"id":` + strconv.Itoa(id) + `,"result":{},"jsonrpc":"2.0"}`
}

func harnessErr(id int, code int) string {
	return `-> {"id":` + strconv.Itoa(id) + `,"error":{"code":` + strconv.Itoa(code) + `,"message":"chaos"},"jsonrpc":"2.0"}`
}

// TestChaosHarnessDeltaOrder: the rules a delta apply is judged by in frame order
// (docs/protocol.md, "When an apply carries a patch" and -32011).
func TestChaosHarnessDeltaOrder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lines     []string
		violation string // a substring of the one violation; "": none
	}{
		{
			name:  "a delta from the last apply that counted",
			lines: []string{harnessFull(1, 3), harnessOK(1), harnessDelta(2, 4, 3), harnessOK(2), harnessDelta(3, 6, 4), harnessOK(3)},
		},
		{
			name:  "rejected, then the same revision in full",
			lines: []string{harnessFull(1, 3), harnessOK(1), harnessDelta(2, 4, 3), harnessErr(2, -32011), harnessFull(3, 4), harnessOK(3)},
		},
		{
			name:      "the first apply is a delta",
			lines:     []string{harnessDelta(1, 4, 3), harnessOK(1)},
			violation: "the channel's previous apply did not count",
		},
		{
			name:      "a delta after a failed apply",
			lines:     []string{harnessFull(1, 3), harnessOK(1), harnessFull(2, 4), harnessErr(2, -32051), harnessDelta(3, 5, 3), harnessOK(3)},
			violation: "the channel's previous apply did not count",
		},
		{
			name:      "a delta from a revision the window never applied",
			lines:     []string{harnessFull(1, 3), harnessOK(1), harnessDelta(2, 5, 4), harnessOK(2)},
			violation: `from baseRevision "4" (epoch "e0"), but the last apply the sidecar counted is revision 3`,
		},
		{
			name:      "a delta across an epoch change",
			lines:     []string{harnessFull(1, 3), harnessOK(1), harnessFrame(2, 4, "e1", `"baseRevision":"3","patch":[]`), harnessOK(2)},
			violation: `(epoch "e1"), but the last apply the sidecar counted is revision 3 of epoch "e0"`,
		},
		{
			name:      "a delta again after -32011",
			lines:     []string{harnessFull(1, 3), harnessOK(1), harnessDelta(2, 4, 3), harnessErr(2, -32011), harnessDelta(3, 4, 3), harnessOK(3)},
			violation: "right after the window answered -32011 to revision 4",
		},
		{
			name:      "another revision in full after -32011",
			lines:     []string{harnessFull(1, 3), harnessOK(1), harnessDelta(2, 4, 3), harnessErr(2, -32011), harnessFull(3, 5), harnessOK(3)},
			violation: "want the same revision again in full, at once",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newHarnessHost(t)
			h.feed(t, tc.lines...)
			violations := h.settleAtExit()
			if tc.violation == "" {
				require.Empty(t, violations)
				return
			}
			require.Len(t, violations, 1, "%v", violations)
			require.Contains(t, violations[0], tc.violation)
		})
	}
}

// TestChaosHarnessDeltaApply: the host, as a window, applies a patch only on top of the
// revision it holds, and answers -32011 otherwise.
func TestChaosHarnessDeltaApply(t *testing.T) {
	h, cc := newHarnessHost(t)
	h.deltas, cc.deltasOn = true, true
	h.mu.Lock()
	defer h.mu.Unlock()
	cc.hasLast, cc.lastEpoch, cc.lastRev, cc.lastData = true, "e0", 3, chaosRevDoc("host-0", "e0", 3)

	_, err := h.applyDeltaLocked(cc, "e0", 5, 4, []byte(`[]`))
	var rpcErr *sidecar.RPCError
	require.ErrorAs(t, err, &rpcErr)
	require.Equal(t, int64(-32011), rpcErr.Code)
	require.JSONEq(t, `{"reason":"baseMismatch","localRevision":"3"}`, string(rpcErr.Data))

	_, err = h.applyDeltaLocked(cc, "e1", 4, 3, []byte(`[]`))
	require.ErrorAs(t, err, &rpcErr, "the same revision in another epoch is another state")

	out, err := h.applyDeltaLocked(cc, "e0", 4, 3, []byte(`[{"op":"replace","path":"/revision","value":"4"},{"op":"replace","path":"/k04/n","value":1}]`))
	require.NoError(t, err)
	require.True(t, sameJSON([]byte(out), []byte(chaosRevDoc("host-0", "e0", 4))), "%s", out)
	require.Empty(t, h.violations)

	_, err = h.applyDeltaLocked(cc, "e0", 4, 3, []byte(`[{"op":"remove","path":"/nothing"}]`))
	require.ErrorAs(t, err, &rpcErr)
	require.JSONEq(t, `{"reason":"patchFailed","localRevision":"3"}`, string(rpcErr.Data))
	require.Len(t, h.violations, 1, "a patch from the base the host holds must apply")
}

// TestChaosHarnessDeltaData: the chaos documents make small patches (one key changes per
// revision), and the projection oracle follows docs/protocol.md's example.
func TestChaosHarnessDeltaData(t *testing.T) {
	for rev := uint64(1); rev < 3*deltaKeys; rev++ {
		var a, b map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(chaosRevDoc("t", "e0", rev)), &a))
		require.NoError(t, json.Unmarshal([]byte(chaosRevDoc("t", "e0", rev+1)), &b))
		require.Len(t, b, deltaKeys+3)
		var changed []string
		for k, v := range a {
			if string(b[k]) != string(v) {
				changed = append(changed, k)
			}
		}
		require.ElementsMatch(t, []string{"revision", deltaKey(int((rev + 1) % deltaKeys))}, changed, "revision %d to %d", rev, rev+1)
	}
	doc := chaosRevDoc("t", "e0", 7)
	canon, err := canonicalJSON([]byte(doc))
	require.NoError(t, err)
	require.Equal(t, canon, doc, "the chaos data is canonical JSON")

	got, err := projectOracle(`{"settings":{"theme":"dark","font":"mono"},"items":[{"id":1}],"count":3}`, []string{"/settings/theme", "/items/0/id", "/missing"})
	require.NoError(t, err)
	require.JSONEq(t, `{"settings":{"theme":"dark"},"items":[{"id":1}]}`, got)
	got, err = projectOracle(`[1,2]`, []string{"/0"})
	require.NoError(t, err)
	require.JSONEq(t, `[1,2]`, got)
}

// TestChaosHarnessNoDeltaFails: a deltas run in which the sidecar sent no delta fails.
func TestChaosHarnessNoDeltaFails(t *testing.T) {
	h, _ := newHarnessHost(t)
	h.deltas = true
	h.counts["applies full"] = 10
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	h.reportDeltas(&b)
	require.Len(t, h.violations, 1)
	require.Contains(t, h.violations[0], "sent no delta")
}
