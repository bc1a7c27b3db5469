package e2e

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/internal/chaos"
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
