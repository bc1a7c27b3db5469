package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/state-sync/state-sync/internal/chaos"
	"github.com/state-sync/state-sync/internal/jsonpatch"
	"github.com/state-sync/state-sync/sidecar"
)

// Deltas in the chaos (issue 15, docs/protocol.md): with deltas on, the windows open
// channels with options.deltas and some with options.paths, and the host is a window that
// keeps each channel's last applied data, applies a delta's patch only on top of the exact
// revision it holds, and answers -32011 otherwise. Every fault of the chaos applies to
// delta applies too, and the host rejects some deltas on purpose, so the sidecar's full
// re-send runs. Half the store writes are state.patch (some behind a test operation that
// passes or fails), whose patch the sidecar may pass on to the windows as their delta.
// Half the runs give the sidecar a small history, so bases fall out of it.
// What must hold on top of TestChaos's invariants:
//   - a delta's baseRevision is the revision of the channel's last apply the sidecar
//     counted (answered with a result, in time), in the same epoch, and below its
//     revision; a delta never goes to a channel that did not opt in;
//   - after a -32011 answer the channel's next apply carries full data, of the same
//     revision unless the sidecar had given up on the call;
//   - the patch applies to what the host holds at baseRevision and gives exactly the
//     data of its revision (canonical JSON), or its projection for a paths channel;
//   - at the end every open channel holds its topic's final data, or its projection, and
//     its channel.status counts the deltas it took and the -32011 answers it gave;
//   - deltas were really sent: a run with none fails.
//
// The data of a topic is a document of tens of keys in which a revision changes one, so
// a patch between near revisions is well under the sidecar's threshold (half the data).

const (
	deltaKeys         = 32
	deltaRejectOneInN = 8 // deltas the host answers -32011 on purpose (while the chaos runs)
)

// chaosDeltasFromEnv is CHAOS_DELTAS: "1" runs TestChaos with deltas on.
func chaosDeltasFromEnv() bool {
	v := os.Getenv("CHAOS_DELTAS")
	return v != "" && v != "0"
}

// TestChaosDeltas is TestChaos with deltas on, shorter: the quick run's evidence that
// deltas reach the same final state as full applies (task soak runs it long, as
// CHAOS_DELTAS=1 TestChaos).
func TestChaosDeltas(t *testing.T) {
	runChaos(t, chaos.SettingsFromEnv(t, 1200, 10, 6*time.Second), true)
}

// chaosSmallHistory is the --delta-history-bytes of half the deltas runs: about ten
// revisions of a chaos document, so bases fall out of the history (and computed patches
// out of their cache) all the time, and those channels get full data.
const chaosSmallHistory = 16 << 10

// deltaArgs draws the sidecar's delta flags: half the runs keep a small history. A
// sidecar without deltas is skipped here, before an unknown flag would stop it.
func (h *chaosHost) deltaArgs(path string) []string {
	help, _ := exec.Command(path, "--help").CombinedOutput()
	if !strings.Contains(string(help), "--delta-history-bytes") {
		h.t.Skipf("deltas on, but this sidecar has no --delta-history-bytes (issue 15 not in this build): its --help says\n%s", help)
	}
	if h.driver.IntN(2) == 0 {
		return nil
	}
	h.historyBytes = chaosSmallHistory
	return []string{"--delta-history-bytes", strconv.Itoa(chaosSmallHistory)}
}

// checkDeltaCapability: initialize announces deltas, with the history the run asked for.
func (h *chaosHost) checkDeltaCapability(raw json.RawMessage) {
	if len(raw) == 0 || string(raw) == "null" {
		h.t.Skip("deltas on, but this sidecar's initialize has no capabilities.deltas (issue 15 not in this build): a channel.open with options.deltas would be refused")
	}
	var capability struct {
		Version         int     `json:"version"`
		HistoryBytes    int     `json:"historyBytes"`
		MinSavingsRatio float64 `json:"minSavingsRatio"`
	}
	want := h.historyBytes
	if want == 0 {
		want = 4 << 20 // docs/protocol.md: the default
	}
	if err := json.Unmarshal(raw, &capability); err != nil || capability.Version != 1 || capability.HistoryBytes != want || capability.MinSavingsRatio != 0.5 {
		h.violation("initialize: capabilities.deltas %s, want version 1, historyBytes %d, minSavingsRatio 0.5", raw, want)
	}
}

// deltaPad is the part of a key's value that never changes: it makes the data large
// next to the leaf one revision changes.
func deltaPad(i int) string { return strings.Repeat(string(rune('a'+i%26)), 24) }

// deltaKey is the name of key i of a chaos document.
func deltaKey(i int) string { return fmt.Sprintf("k%02d", i) }

// chaosDeltaDoc renders a document in canonical JSON (sorted keys, compact): fields,
// plus deltaKeys keys each {"n": counts[i], "pad": ...}. Written by hand: the host renders
// one per apply it checks, under its lock, and encoding/json of nested maps costs
// milliseconds under -race.
func chaosDeltaDoc(fields map[string]any, counts []int) string {
	members := make(map[string]string, len(fields)+len(counts))
	for k, v := range fields {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // strings and ints always marshal
		}
		members[k] = string(b)
	}
	for i, n := range counts {
		members[deltaKey(i)] = `{"n":` + strconv.Itoa(n) + `,"pad":"` + deltaPad(i) + `"}`
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(members)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(k)) // the chaos keys are plain ASCII: JSON and Go quote them alike
		b.WriteByte(':')
		b.WriteString(members[k])
	}
	b.WriteByte('}')
	return b.String()
}

// chaosRevDoc is the data of a host or channel-sourced topic at (epoch, rev) with deltas
// on: key i counts the revisions 1..rev that are i modulo deltaKeys, so going from rev-1
// to rev changes "revision" and one key's "n".
func chaosRevDoc(topic, epoch string, rev uint64) string {
	counts := make([]int, deltaKeys)
	for i := range counts {
		// revisions r in 1..rev with r % deltaKeys == i
		first := uint64(i)
		if i == 0 {
			first = deltaKeys
		}
		if rev >= first {
			counts[i] = int((rev-first)/deltaKeys) + 1
		}
	}
	return chaosDeltaDoc(map[string]any{"topic": topic, "epoch": epoch, "revision": strconv.FormatUint(rev, 10)}, counts)
}

// canonicalJSON re-encodes b with sorted keys and no spaces, so two encodings of one
// value compare equal as strings; numbers keep their text.
func canonicalJSON(b []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	if dec.More() {
		return "", fmt.Errorf("trailing data after the JSON value")
	}
	out, err := json.Marshal(v)
	return string(out), err
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true // mostly: the chaos data is canonical already
	}
	ca, err := canonicalJSON(a)
	if err != nil {
		return false
	}
	cb, err := canonicalJSON(b)
	return err == nil && ca == cb
}

// projectOracle is the projection of docs/protocol.md: for each pointer whose target
// exists, the value at the same place, under ancestors holding only the selected members;
// a pointer into an array keeps the whole array. Pointers must not nest in each other. Written apart from
// internal/jsonpatch.Project so the test does not judge the sidecar by its own code.
func projectOracle(doc string, paths []string) (string, error) {
	var root any
	if err := json.Unmarshal([]byte(doc), &root); err != nil {
		return "", err
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return doc, nil // a non-object root projects to itself
	}
	out := map[string]any{}
	for _, p := range paths {
		tokens := strings.Split(p, "/")[1:] // the chaos pointers have no ~ escapes
		var cur any = obj
		found := true
		for i, tok := range tokens {
			if _, isArray := cur.([]any); isArray {
				tokens = tokens[:i] // selection stops at the first array: all of it is kept
				break
			}
			m, isObj := cur.(map[string]any)
			if !isObj {
				found = false
				break
			}
			if cur, found = m[tok]; !found {
				break
			}
		}
		if !found {
			continue
		}
		dst := out
		for _, tok := range tokens[:len(tokens)-1] {
			next, ok := dst[tok].(map[string]any)
			if !ok {
				next = map[string]any{}
				dst[tok] = next
			}
			dst = next
		}
		dst[tokens[len(tokens)-1]] = cur
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// deltaOptionsLocked draws a channel's options with deltas on: most channels take
// deltas, some select paths (with deltas or without). The paths of one channel never
// nest in each other, and "/epoch" is always among them, so an epoch change is always
// seen; one may name a member that never exists.
func (h *chaosHost) deltaOptionsLocked(cc *chaosChan) map[string]any {
	opts := map[string]any{}
	cc.deltasOn = h.driver.IntN(8) != 0
	opts["deltas"] = cc.deltasOn
	if h.driver.IntN(10) < 3 {
		paths := []string{"/epoch"}
		for _, i := range h.driver.Perm(deltaKeys)[:1+h.driver.IntN(3)] {
			if h.driver.IntN(2) == 0 {
				paths = append(paths, "/"+deltaKey(i))
			} else {
				paths = append(paths, "/"+deltaKey(i)+"/n")
			}
		}
		if h.driver.IntN(4) == 0 {
			paths = append(paths, "/nothing/here")
		}
		cc.paths = paths
		opts["paths"] = paths
	}
	return opts
}

// wantDataLocked is what channel cc must hold at (epoch, rev): the topic's data, or its
// projection; ok is false when the host cannot tell (a store revision it did not write).
func (h *chaosHost) wantDataLocked(cc *chaosChan, epoch string, rev uint64) (string, bool) {
	var full string
	switch {
	case cc.topic.source == "store":
		d, ok := cc.topic.storeData[rev]
		if !ok {
			return "", false
		}
		full = d
	case h.deltas:
		full = chaosRevDoc(cc.topic.name, epoch, rev)
	default:
		full = chaosData(cc.topic.name, epoch, rev)
	}
	if cc.paths == nil {
		return full, true
	}
	if cc.projOf == full {
		return cc.proj, true // converge asks again and again for the final data's
	}
	p, err := projectOracle(full, cc.paths)
	if err != nil {
		h.violationLocked("%s: projecting %s: %v", cc.name, full, err)
		return "", false
	}
	cc.projOf, cc.proj = full, p
	return p, true
}

// applyDeltaLocked is the window applying a delta: only on top of the revision it holds
// (epoch included), with internal/jsonpatch.Apply; the error is the -32011 answer.
func (h *chaosHost) applyDeltaLocked(cc *chaosChan, epoch string, rev, base uint64, patch json.RawMessage) (string, error) {
	if !cc.hasLast || cc.lastEpoch != epoch || cc.lastRev != base {
		h.counts["deltas rejected: base mismatch"]++
		local := ""
		if cc.hasLast {
			local = strconv.FormatUint(cc.lastRev, 10)
		}
		return "", deltaRejected("baseMismatch", local, fmt.Sprintf("delta rejected: the window holds revision %q of epoch %q, the patch is from %d of %q", local, cc.lastEpoch, base, epoch))
	}
	p, err := jsonpatch.DecodePatch(patch)
	var out []byte
	if err == nil {
		out, err = jsonpatch.Apply([]byte(cc.lastData), p)
	}
	if err != nil {
		// The host holds exactly the data of base (each revision has one), so the
		// sidecar's patch from base must apply.
		h.counts["deltas rejected: patch failed"]++
		h.violationLocked("%s: the delta from %d to %d does not apply to the data at %d: %v\n  data: %.300s\n  patch: %.300s", cc.name, base, rev, base, err, cc.lastData, patch)
		return "", deltaRejected("patchFailed", strconv.FormatUint(cc.lastRev, 10), "delta rejected: the patch failed: "+err.Error())
	}
	return string(out), nil
}

// storePatchLocked is a store write as state.patch (deltas on): the same change as the
// state.set it replaces, as replace operations, now and then behind a test operation
// that passes, or (unless final) one that fails: the compare-and-set that loses, -32005.
func (h *chaosHost) storePatchLocked(tp *chaosTopic, final bool, counts, changed []int) []map[string]any {
	var ops []map[string]any
	switch h.driver.IntN(8) {
	case 0:
		i := h.driver.IntN(deltaKeys)
		ops = append(ops, map[string]any{"op": "test", "path": "/" + deltaKey(i) + "/n", "value": tp.storeCounts[tp.rev][i]})
	case 1:
		if !final {
			ops = append(ops, map[string]any{"op": "test", "path": "/" + deltaKey(h.driver.IntN(deltaKeys)) + "/n", "value": -1})
		}
	}
	ops = append(ops, map[string]any{"op": "replace", "path": "/write", "value": h.nextWrite})
	for _, i := range changed {
		ops = append(ops, map[string]any{"op": "replace", "path": "/" + deltaKey(i) + "/n", "value": counts[i]})
	}
	return ops
}

func deltaRejected(reason, local, msg string) error {
	data := map[string]string{"reason": reason}
	if local != "" {
		data["localRevision"] = local
	}
	raw, _ := json.Marshal(data)
	return &sidecar.RPCError{Code: -32011, Message: msg, Data: raw}
}

// checkFinalDataLocked: every open channel holds its topic's final data (or its
// projection), compared as canonical JSON.
func (h *chaosHost) checkFinalDataLocked(open []*chaosChan) {
	for _, cc := range open {
		want, ok := h.wantDataLocked(cc, cc.topic.epoch, cc.topic.rev)
		if !ok {
			h.violationLocked("%s (%s): the host wrote no data at the final revision %d", cc.name, cc.topic.name, cc.topic.rev)
			continue
		}
		if !sameJSON([]byte(cc.lastData), []byte(want)) {
			h.violationLocked("%s (%s, paths %v): holds %.300s at the end, want %.300s", cc.name, cc.topic.name, cc.paths, cc.lastData, want)
		}
	}
}

// checkDeltaCounters: channel.status of every open channel counts the deltas the window
// took and the -32011 answers, as the frames show them. The latest apply of a channel is
// not settled yet (that happens when the next one comes): judge it as it stands, and ask
// again (bounded) while the sidecar may not have read its answer.
func (h *chaosHost) checkDeltaCounters() {
	h.mu.Lock()
	var open []*chaosChan
	for _, cc := range h.order {
		if cc.state == "open" {
			open = append(open, cc)
		}
	}
	h.mu.Unlock()
	type counters struct {
		Deltas          int `json:"deltas"`
		DeltaRejections int `json:"deltaRejections"`
	}
	want := func(cc *chaosChan) counters {
		h.mu.Lock()
		defer h.mu.Unlock()
		c := counters{cc.deltasCounted, cc.rejections}
		if rec := cc.unsettled; rec != nil && rec.answered && !rec.timedOut && !rec.cancelled {
			switch {
			case rec.ok && rec.delta:
				c.Deltas++
			case rec.code == -32011:
				c.DeltaRejections++
			}
		}
		return c
	}
	for _, cc := range open {
		var st struct {
			Counters counters `json:"counters"`
		}
		// The sidecar counts an answer on its engine's goroutine after reading it, and
		// tells nobody: ask again, bounded, pausing 1 ms once quick retries have not seen it.
		deadline := time.Now().Add(chaosWaitBound)
		for tries := 0; ; tries++ {
			if err := h.c.Call(h.ctx(), "channel.status", map[string]any{"channel": cc.name}, &st); err != nil {
				h.violation("channel.status %s: %v", cc.name, err)
				break
			}
			if st.Counters == want(cc) || time.Now().After(deadline) {
				break
			}
			if tries >= 20 {
				time.Sleep(time.Millisecond)
			}
		}
		w := want(cc)
		h.mu.Lock()
		h.counts["status deltas"] += w.Deltas
		h.counts["status rejections"] += w.DeltaRejections
		h.mu.Unlock()
		if st.Counters != w {
			h.violation("channel.status %s: counters deltas %d, deltaRejections %d; the frames show %d deltas taken and %d -32011 answers read in time", cc.name, st.Counters.Deltas, st.Counters.DeltaRejections, w.Deltas, w.DeltaRejections)
		}
	}
}

// reportDeltas prints the delta counts, and fails a deltas run in which none was sent.
func (h *chaosHost) reportDeltas(b *strings.Builder) {
	if !h.deltas {
		fmt.Fprintf(b, "\n  applies: %d full (deltas off)", h.counts["applies full"])
		return
	}
	ratio := 0.0
	if n := h.counts["delta data bytes"]; n > 0 {
		ratio = float64(h.counts["delta patch bytes"]) / float64(n)
	}
	history := "default"
	if h.historyBytes > 0 {
		history = strconv.Itoa(h.historyBytes) + " bytes"
	}
	fmt.Fprintf(b, "\n  delta history: %s; applies: %d deltas, %d full; deltas rejected -32011: %d (%d on purpose, %d base mismatch, %d patch failed); %d deltas taken; patch bytes %.2fx of the data they replaced; channels: %d with deltas, %d with paths; store writes by state.patch: %d; channel.status of the channels open at the end checked for %d deltas and %d rejections",
		history, h.counts["applies delta"], h.counts["applies full"],
		h.counts["deltas rejected on purpose"]+h.counts["deltas rejected: base mismatch"]+h.counts["deltas rejected: patch failed"],
		h.counts["deltas rejected on purpose"], h.counts["deltas rejected: base mismatch"], h.counts["deltas rejected: patch failed"],
		h.counts["deltas taken"], ratio, h.counts["channels with deltas"], h.counts["channels with paths"], h.counts["store writes by state.patch"], h.counts["status deltas"], h.counts["status rejections"])
	if h.counts["applies delta"] == 0 {
		h.violationLocked("deltas on, but the sidecar sent no delta in %d applies: the run did not exercise deltas", h.counts["applies full"])
	}
}
