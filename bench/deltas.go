package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/state-sync/state-sync/internal/jsonpatch"
)

// Issue 15's performance table: what deltas save and cost, each figure next to its
// deltas-off twin and the 1 KiB fan-out measured in the same run.
//
//   - store: 100 windows on a 1 MiB store topic; each round changes one leaf with
//     state.patch and ends when the answer is read and every window has applied it.
//     Bytes per apply, and the latency as a ratio to the 1 KiB fan-out of the run.
//   - host: a 1 MiB host topic, one key changed per round, 10 windows: the sidecar's CPU
//     per change (utime+stime of its process), with and without deltas, and the share of
//     it that jsonpatch.Diff of the same two documents takes (measured in this process).
//
// The windows are Go code speaking the protocol as the SDK does (deltaWindows): with
// deltas on they check baseRevision against the revision they hold, apply the patch with
// internal/jsonpatch to the data they hold, and answer -32011 when either fails; so the
// latency includes the window's apply work, as a user's window pays it.

// deltaWindowsN and deltaHostWindows are the windows of the two cells (issue 15's table).
const (
	deltaWindowsN    = 100
	deltaHostWindows = 10
	deltaDocSize     = 1 << 20
	deltaTopic       = "bench-deltas"
)

// deltasReport is the whole deltas section.
type deltasReport struct {
	FanOut     *fanoutResult      `json:"fanOut1KiB,omitempty"` // invalidate → 100 channels, 1 KiB
	Store      []deltaStoreResult `json:"store,omitempty"`
	Host       []deltaHostResult  `json:"host,omitempty"`
	DiffNs     float64            `json:"diffNsPerOp"`    // jsonpatch.Diff of the host cell's two documents
	ApplyNs    float64            `json:"applyNsPerOp"`   // jsonpatch.Apply of the one-leaf patch to 1 MiB
	PatchBytes int                `json:"diffPatchBytes"` // what that Diff returned
	SelfHeal   *selfHealResult    `json:"selfHeal,omitempty"`
}

// deltaStoreResult is one store cell: state.patch → every window applied.
type deltaStoreResult struct {
	Deltas bool `json:"deltas"`
	// NoApply: a diagnostic cell whose windows check baseRevision and acknowledge without
	// applying the patch: the sidecar's part of the latency, not what a user meets.
	NoApply bool `json:"windowsDoNotApply,omitempty"`
	// FreezeData: windows that do what the SDK does with freezeData (bench/tree.go).
	FreezeData    bool     `json:"freezeData,omitempty"`
	Windows       int      `json:"windows"`
	SizeBytes     int      `json:"sizeBytes"`
	Rounds        int      `json:"rounds"`
	Latency       dist     `json:"latency"`
	Applies       int64    `json:"applies"` // in the measured rounds
	DeltaApplies  int64    `json:"deltaApplies"`
	BytesPerApply float64  `json:"bytesPerApply"`    // apply frames as read, newline included
	Rejections    int64    `json:"rejections"`       // -32011 answers (0 unless something is off)
	WindowMsRound float64  `json:"windowMsPerRound"` // the windows' apply work per round, summed over windows
	SidecarCPUMs  float64  `json:"sidecarCpuMsPerRound"`
	PeakRSSBytes  int64    `json:"peakRssBytes"`
	Pid           int      `json:"pid"`
	ErrorNotifs   int64    `json:"errorNotifications"`
	FirstErrors   []string `json:"firstErrors,omitempty"`
}

// deltaHostResult is one host cell: a host-sourced 1 MiB topic, one key changed per round.
type deltaHostResult struct {
	Deltas        bool     `json:"deltas"`
	Windows       int      `json:"windows"`
	Changes       int      `json:"changes"`
	CPUMsChange   float64  `json:"sidecarCpuMsPerChange"`
	Latency       dist     `json:"latency"`
	BytesPerApply float64  `json:"bytesPerApply"`
	DeltaApplies  int64    `json:"deltaApplies"`
	Rejections    int64    `json:"rejections"`
	Pid           int      `json:"pid"`
	ErrorNotifs   int64    `json:"errorNotifications"`
	FirstErrors   []string `json:"firstErrors,omitempty"`
}

// selfHealResult is the deltas-on store cell's closing check: a window that lost its
// base and one whose data no longer fits the patch each answer -32011, get full data at
// once, and every window ends holding exactly the store's data.
type selfHealResult struct {
	BaseMismatch int64 `json:"baseMismatch"`
	PatchFailed  int64 `json:"patchFailed"`
	Converged    bool  `json:"converged"`
	AllEqual     bool  `json:"everyWindowHoldsTheStoreData"`
}

func measureDeltas(cfg config, p plan, out io.Writer, fail func(error)) *deltasReport {
	rep := &deltasReport{}
	fmt.Fprintf(out, "\nDeltas (issue 15): %d windows on a %s store topic, one leaf changed by state.patch; a %s host topic, one key changed, %d windows\n",
		deltaWindowsN, fmtBytes(deltaDocSize), fmtBytes(deltaDocSize), deltaHostWindows)
	fmt.Fprintln(out, "  windows: Go code in the harness doing what the SDK does: keep each channel's data; with deltas on check baseRevision,")
	fmt.Fprintln(out, "  jsonpatch.Apply the patch to it, answer -32011 on a mismatch; with full data read and keep it compact (json.Compact, as a webview JSON.parses it);")
	fmt.Fprintln(out, "  windows with freezeData keep the data parsed and apply a patch by copying only the containers on its path (bench/tree.go), as the SDK does then")

	cell := func(name string) bool {
		if cfg.deltaCells != nil {
			return cfg.deltaCells[name]
		}
		return name != "noapply" || p.deltaDiag
	}
	progress("deltas: fan-out %d × 1 KiB (the reference)", deltaWindowsN)
	if r, err := fanout(cfg.bin, cfg.kids.floorchild, deltaWindowsN, 1<<10, p.fan, p.floor); err != nil {
		fail(err)
	} else {
		rep.FanOut = &r
	}
	// Off, on, off, on: a change in the machine's load hits both alike.
	for _, on := range p.deltaOrder {
		if !cell("store") {
			break
		}
		progress("deltas: store %d × %s, deltas %s", deltaWindowsN, fmtBytes(deltaDocSize), onOff(on))
		r, heal, err := deltaStoreCell(cfg.bin, on, windowsCopy, p.deltaStore)
		if err != nil {
			fail(err)
			continue
		}
		rep.Store = append(rep.Store, r)
		if heal != nil {
			rep.SelfHeal = heal
			if !heal.Converged || !heal.AllEqual || heal.BaseMismatch != 1 || heal.PatchFailed != 1 {
				fail(fmt.Errorf("deltas self-heal: want one baseMismatch and one patchFailed rejection, convergence and every window holding the store's data; got %+v", *heal))
			}
		}
	}
	if cell("freezedata") {
		progress("deltas: store %d × %s, deltas on, windows with freezeData", deltaWindowsN, fmtBytes(deltaDocSize))
		r, heal, err := deltaStoreCell(cfg.bin, true, windowsFreezeData, p.deltaStore)
		if err != nil {
			fail(err)
		} else {
			rep.Store = append(rep.Store, r)
			if !heal.Converged || !heal.AllEqual || heal.BaseMismatch != 1 || heal.PatchFailed != 1 {
				fail(fmt.Errorf("deltas self-heal, freezeData windows: want one baseMismatch and one patchFailed rejection, convergence and every window holding the store's data; got %+v", *heal))
			}
		}
	}
	if cell("noapply") {
		progress("deltas: store %d × %s, deltas on, windows that do not apply (diagnostic)", deltaWindowsN, fmtBytes(deltaDocSize))
		if r, _, err := deltaStoreCell(cfg.bin, true, windowsNoApply, p.deltaStore); err != nil {
			fail(err)
		} else {
			rep.Store = append(rep.Store, r)
		}
	}
	for _, on := range p.deltaOrder {
		if !cell("host") {
			break
		}
		progress("deltas: host topic %s, %d windows, deltas %s", fmtBytes(deltaDocSize), deltaHostWindows, onOff(on))
		r, err := deltaHostCell(cfg.bin, on, p.deltaHostChanges)
		if err != nil {
			fail(err)
			continue
		}
		rep.Host = append(rep.Host, r)
	}
	progress("deltas: jsonpatch.Diff and Apply of the same documents, in process")
	rep.DiffNs, rep.ApplyNs, rep.PatchBytes = diffCost()
	printDeltas(out, rep)
	return rep
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func printDeltas(out io.Writer, rep *deltasReport) {
	fan := 0.0
	if rep.FanOut != nil {
		fan = rep.FanOut.Latency.P50
		fmt.Fprintf(out, "  reference: invalidate → %d channels applied, 1 KiB: p50 %s, p99 %s (floor p50 %s; %d rounds)\n",
			deltaWindowsN, fmtMs(rep.FanOut.Latency.P50), fmtMs(rep.FanOut.Latency.P99), fmtMs(rep.FanOut.Floor.P50), rep.FanOut.Rounds)
	}
	fmt.Fprintln(out, "  store topic: state.patch → answered and every window applied")
	tw := newTable(out, "deltas", "rounds", "bytes/apply", "delta applies", "p50", "p99", "×1 KiB fan-out p50", "window apply work/round", "sidecar CPU/round", "-32011", "peak RSS")
	for _, r := range rep.Store {
		ratio := "-"
		if fan > 0 {
			ratio = fmt.Sprintf("%.1f", r.Latency.P50/fan)
		}
		name := onOff(r.Deltas)
		switch {
		case r.NoApply:
			name = "on, windows do not apply (diagnostic)"
		case r.FreezeData:
			name = "on, windows with freezeData"
		}
		tw.row(name, fmt.Sprint(r.Rounds), fmtBytes(int64(r.BytesPerApply)), fmt.Sprintf("%d of %d", r.DeltaApplies, r.Applies),
			fmtMs(r.Latency.P50), fmtMs(r.Latency.P99), ratio, fmtMs(r.WindowMsRound), fmtMs(r.SidecarCPUMs), fmt.Sprint(r.Rejections), fmtBytes(r.PeakRSSBytes))
		warnErrors(out, "deltas store", r.ErrorNotifs, r.FirstErrors)
	}
	tw.flush()
	if h := rep.SelfHeal; h != nil {
		fmt.Fprintf(out, "  self-heal (deltas on, after the rounds): one window forgets its data, one holds data the patch cannot apply to:\n")
		fmt.Fprintf(out, "  -32011 baseMismatch %d, patchFailed %d; converged %t; every window holds the store's data %t\n", h.BaseMismatch, h.PatchFailed, h.Converged, h.AllEqual)
	}
	fmt.Fprintln(out, "  host topic: invalidate → every window applied; sidecar CPU = its utime+stime over the changes (/proc/<pid>/stat)")
	ht := newTable(out, "deltas", "changes", "sidecar CPU/change", "p50", "p99", "bytes/apply", "delta applies", "-32011")
	for _, r := range rep.Host {
		ht.row(onOff(r.Deltas), fmt.Sprint(r.Changes), fmtMs(r.CPUMsChange), fmtMs(r.Latency.P50), fmtMs(r.Latency.P99),
			fmtBytes(int64(r.BytesPerApply)), fmt.Sprint(r.DeltaApplies), fmt.Sprint(r.Rejections))
		warnErrors(out, "deltas host", r.ErrorNotifs, r.FirstErrors)
	}
	ht.flush()
	fmt.Fprintf(out, "  in process (CPU time per call, same documents): jsonpatch.Diff %s/op (patch %d B), jsonpatch.Apply of the one-leaf patch %s/op\n",
		fmtMs(rep.DiffNs/1e6), rep.PatchBytes, fmtMs(rep.ApplyNs/1e6))

	fmt.Fprintln(out, "\n  Issue 15's table, this run (reported, never asserted)")
	st := newTable(out, "measure", "deltas on", "deltas off", "reference", "ratio", "target", "")
	on, off := pickStore(rep.Store, true), pickStore(rep.Store, false)
	if on != nil && off != nil {
		st.row(fmt.Sprintf("%d windows, %s store topic, one leaf by state.patch: bytes per apply", deltaWindowsN, fmtBytes(deltaDocSize)),
			fmtBytes(int64(on.BytesPerApply)), fmtBytes(int64(off.BytesPerApply)), "-", fmt.Sprintf("%.5f of off", on.BytesPerApply/off.BytesPerApply),
			"≤ 1 KiB", verdict(on.BytesPerApply <= 1024))
		if fan > 0 {
			st.row("the same, state.patch → every window applied, p50",
				fmtMs(on.Latency.P50), fmtMs(off.Latency.P50), "1 KiB fan-out "+fmtMs(fan), fmt.Sprintf("%.1fx (off %.1fx)", on.Latency.P50/fan, off.Latency.P50/fan),
				"≤ 2x", verdict(on.Latency.P50 <= 2*fan))
			st.row("the same, p99", fmtMs(on.Latency.P99), fmtMs(off.Latency.P99), "1 KiB fan-out "+fmtMs(rep.FanOut.Latency.P99),
				fmt.Sprintf("%.1fx (off %.1fx)", on.Latency.P99/rep.FanOut.Latency.P99, off.Latency.P99/rep.FanOut.Latency.P99), "reported", "")
			if fz := pickFreezeData(rep.Store); fz != nil {
				st.row("the same, windows with freezeData: true, p50",
					fmtMs(fz.Latency.P50), fmtMs(off.Latency.P50), "1 KiB fan-out "+fmtMs(fan), fmt.Sprintf("%.1fx (off %.1fx)", fz.Latency.P50/fan, off.Latency.P50/fan),
					"≤ 2x", verdict(fz.Latency.P50 <= 2*fan))
			}
		}
	}
	hon, hoff := pickHost(rep.Host, true), pickHost(rep.Host, false)
	if hon != nil && hoff != nil {
		share := "-"
		if hon.CPUMsChange > 0 {
			share = fmt.Sprintf("Diff %s = %.0f %% of on", fmtMs(rep.DiffNs/1e6), 100*rep.DiffNs/1e6/hon.CPUMsChange)
		}
		st.row(fmt.Sprintf("host topic, %s, one key changed, %d windows: sidecar CPU per change", fmtBytes(deltaDocSize), deltaHostWindows),
			fmtMs(hon.CPUMsChange), fmtMs(hoff.CPUMsChange), share, fmt.Sprintf("%.2fx of off", hon.CPUMsChange/hoff.CPUMsChange), "reported, with the diff's share", "")
	}
	st.flush()
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

// pickStore returns the last cell with deltas on (or off): with two of each, the second,
// measured after the machine had run both once.
func pickStore(rs []deltaStoreResult, on bool) *deltaStoreResult {
	var r *deltaStoreResult
	for i := range rs {
		if rs[i].Deltas == on && !rs[i].NoApply && !rs[i].FreezeData {
			r = &rs[i]
		}
	}
	return r
}

func pickFreezeData(rs []deltaStoreResult) *deltaStoreResult {
	for i := range rs {
		if rs[i].FreezeData {
			return &rs[i]
		}
	}
	return nil
}

func pickHost(rs []deltaHostResult, on bool) *deltaHostResult {
	var r *deltaHostResult
	for i := range rs {
		if rs[i].Deltas == on {
			r = &rs[i]
		}
	}
	return r
}

// leafPatch is the one-leaf change of round k: the price of the record in the middle of
// payload's array, a different value each round.
func leafPatch(k int) []byte {
	return fmt.Appendf(nil, `[{"op":"replace","path":"/items/%d/price","value":%d.%02d}]`, leafIndex, 100+k%900, k%100)
}

// leafIndex is a record in the middle of the 1 MiB payload (about 11,000 records).
var leafIndex = func() int {
	var doc struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(payload(deltaDocSize), &doc); err != nil {
		panic(err)
	}
	return len(doc.Items) / 2
}()

// windowMode is how a store cell's windows take a patch.
type windowMode int

const (
	windowsCopy       windowMode = iota // as the SDK does by default: applied to the window's own copy of the data
	windowsFreezeData                   // as the SDK does with freezeData: parsed data shared, the patch's path copied
	windowsNoApply                      // the diagnostic cell: the base checked, nothing applied
)

// deltaStoreCell measures state.patch → every window applied on a 1 MiB store topic.
func deltaStoreCell(bin string, deltas bool, mode windowMode, b budget) (res deltaStoreResult, heal *selfHealResult, err error) {
	noApply := mode == windowsNoApply
	res = deltaStoreResult{Deltas: deltas, NoApply: noApply, FreezeData: mode == windowsFreezeData, Windows: deltaWindowsN, SizeBytes: deltaDocSize}
	h, err := startSidecar(bin, nil, deltaWindowsN)
	if err != nil {
		return res, nil, err
	}
	defer closeHost(h, &err)
	res.Pid = h.pid
	progress("  sidecar pid %d", h.pid)
	win := newDeltaWindows(h, deltaWindowsN)
	win.mode = mode
	defer win.stop()
	if err := deltaInitialize(h); err != nil {
		return res, nil, err
	}
	data := payload(deltaDocSize)
	set := append(append([]byte(`{"topic":"`+deltaTopic+`","data":`), data...), '}')
	if _, err := h.call("state.set", set, roundTimeout); err != nil {
		return res, nil, err
	}
	if err := openDeltaChannels(h, deltaWindowsN, deltaTopic, "store", deltas); err != nil {
		return res, nil, err
	}
	rev := uint64(1)
	round := func(k int) (time.Duration, error) {
		rev++
		t := h.expectAll(deltaWindowsN, rev)
		params := append(append([]byte(`{"topic":"`+deltaTopic+`","patch":`), leafPatch(k)...), '}')
		t0 := time.Now()
		result, err := h.call("state.patch", params, roundTimeout)
		if err != nil {
			return 0, err
		}
		answered := time.Now()
		if want := `"revision":"` + strconv.FormatUint(rev, 10) + `"`; !bytes.Contains(result, []byte(want)) {
			return 0, fmt.Errorf("state.patch: answered %s, want revision %d", bounded(result), rev)
		}
		at, err := h.wait(t, roundTimeout, fmt.Sprintf("deltas store %s round %d", onOff(deltas), k))
		if err != nil {
			return 0, err
		}
		if answered.After(at) {
			at = answered // the round ends when both the answer and every apply are in
		}
		return at.Sub(t0), nil
	}
	var samples []time.Duration
	var cpu0 time.Duration
	deadline := time.Now().Add(b.maxTime)
	for k := 0; k < b.warmup+b.rounds; k++ {
		if k >= b.warmup+b.minRounds && time.Now().After(deadline) {
			break
		}
		if k == b.warmup {
			win.resetCounters()
			cpu0, _ = procCPU(h.pid)
		}
		d, err := round(k)
		if err != nil {
			return res, nil, err
		}
		if k >= b.warmup {
			samples = append(samples, d)
		}
	}
	cpu1, cpuErr := procCPU(h.pid)
	res.Rounds = len(samples)
	res.Latency = summarize(samples)
	c := win.counters()
	res.Applies, res.DeltaApplies, res.Rejections = c.applies, c.deltas, c.mismatch+c.failed
	if c.applies > 0 {
		res.BytesPerApply = float64(c.bytes) / float64(c.applies)
	}
	if res.Rounds > 0 {
		res.WindowMsRound = ms(time.Duration(c.workNs)) / float64(res.Rounds)
		if cpuErr == nil {
			res.SidecarCPUMs = ms(cpu1-cpu0) / float64(res.Rounds)
		}
	}
	res.PeakRSSBytes, _ = procStatus(h.pid, "VmHWM")
	if deltas && !noApply {
		if heal, err = selfHeal(h, win, round); err != nil {
			return res, heal, err
		}
	}
	res.ErrorNotifs = h.errorNotifs.Load()
	res.FirstErrors = h.errors()
	return res, heal, nil
}

// selfHeal makes window 0 forget its data (a reloaded window) and gives window 1 data the
// next patch cannot apply to, then runs one more round: each must answer -32011 with its
// reason, get full data at once, and every window must end with exactly the store's data.
func selfHeal(h *host, win *deltaWindows, round func(int) (time.Duration, error)) (*selfHealResult, error) {
	win.resetCounters()
	win.corrupt(0, func(s *windowState) { s.data, s.tree, s.hasTree, s.rev = nil, nil, false, "" })
	win.corrupt(1, func(s *windowState) {
		s.data, s.tree = []byte(`{"items":[]}`), map[string]any{"items": []any{}}
	})
	heal := &selfHealResult{}
	if _, err := round(1 << 20); err != nil {
		return heal, err
	}
	heal.Converged = true
	c := win.counters()
	heal.BaseMismatch, heal.PatchFailed = c.mismatch, c.failed
	got, err := h.call("state.get", []byte(`{"topic":"`+deltaTopic+`"}`), roundTimeout)
	if err != nil {
		return heal, err
	}
	var r struct {
		Revision string          `json:"revision"`
		Data     json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(got, &r); err != nil {
		return heal, fmt.Errorf("state.get: %w", err)
	}
	heal.AllEqual = win.allHold(r.Revision, r.Data)
	return heal, nil
}

// deltaHostCell changes one key of a 1 MiB host topic per round and measures the
// sidecar's CPU per change.
func deltaHostCell(bin string, deltas bool, changes budget) (res deltaHostResult, err error) {
	res = deltaHostResult{Deltas: deltas, Windows: deltaHostWindows}
	h, err := startSidecar(bin, nil, deltaHostWindows)
	if err != nil {
		return res, err
	}
	defer closeHost(h, &err)
	res.Pid = h.pid
	progress("  sidecar pid %d", h.pid)
	win := newDeltaWindows(h, deltaHostWindows)
	defer win.stop()
	if err := deltaInitialize(h); err != nil {
		return res, err
	}
	doc := payload(deltaDocSize)
	h.setSnapshot(1, doc)
	if err := openDeltaChannels(h, deltaHostWindows, topicName, "host", deltas); err != nil {
		return res, err
	}
	var samples []time.Duration
	var cpu0 time.Duration
	deadline := time.Now().Add(changes.maxTime)
	rev := uint64(1)
	for k := 0; k < changes.warmup+changes.rounds; k++ {
		if k >= changes.warmup+changes.minRounds && time.Now().After(deadline) {
			break
		}
		// The next document is built before the clock starts: the host's own work.
		p, err := jsonpatch.DecodePatch(leafPatch(k))
		if err != nil {
			return res, err
		}
		if doc, err = jsonpatch.Apply(doc, p); err != nil {
			return res, err
		}
		if k == changes.warmup {
			win.resetCounters()
			cpu0, _ = procCPU(h.pid)
		}
		rev++
		h.setSnapshot(rev, doc)
		t := h.expectAll(deltaHostWindows, rev)
		t0 := time.Now()
		h.notify(invalidateLine(nil, rev))
		at, err := h.wait(t, roundTimeout, fmt.Sprintf("deltas host %s change %d", onOff(deltas), k))
		if err != nil {
			return res, err
		}
		if k >= changes.warmup {
			samples = append(samples, at.Sub(t0))
		}
	}
	// The sidecar may still be finishing a change's bookkeeping after the last apply is
	// acked; a request answered after it bounds that.
	if _, err := h.call("channel.status", []byte(`{"channel":"`+channelName(0)+`"}`), roundTimeout); err != nil {
		return res, err
	}
	cpu1, cpuErr := procCPU(h.pid)
	res.Changes = len(samples)
	res.Latency = summarize(samples)
	c := win.counters()
	res.DeltaApplies, res.Rejections = c.deltas, c.mismatch+c.failed
	if c.applies > 0 {
		res.BytesPerApply = float64(c.bytes) / float64(c.applies)
	}
	if cpuErr != nil {
		return res, cpuErr
	}
	if res.Changes > 0 {
		res.CPUMsChange = ms(cpu1-cpu0) / float64(res.Changes)
	}
	res.ErrorNotifs = h.errorNotifs.Load()
	res.FirstErrors = h.errors()
	return res, nil
}

// deltaInitialize initializes and checks that the sidecar offers deltas.
func deltaInitialize(h *host) error {
	result, err := h.call("initialize", []byte(`{"protocolVersion":"1","client":{"name":"statesync-bench","version":"1"}}`), setupTimeout)
	if err != nil {
		return err
	}
	var r struct {
		Capabilities struct {
			Deltas *struct {
				HistoryBytes int `json:"historyBytes"`
			} `json:"deltas"`
		} `json:"capabilities"`
	}
	if err := json.Unmarshal(result, &r); err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if r.Capabilities.Deltas == nil {
		return errors.New("deltas: the sidecar's initialize has no capabilities.deltas: measure a sidecar built with issue 15 (rpc/deltas.go)")
	}
	if r.Capabilities.Deltas.HistoryBytes < deltaDocSize {
		return fmt.Errorf("deltas: the sidecar keeps %d bytes of history per topic, less than one %s document: every apply would be full", r.Capabilities.Deltas.HistoryBytes, fmtBytes(deltaDocSize))
	}
	return nil
}

// openDeltaChannels opens channels [0, n), with options.deltas when on; off sends no
// option at all, as a window that does not opt in.
func openDeltaChannels(h *host, n int, topic, source string, deltas bool) error {
	opts := ""
	if deltas {
		opts = `,"options":{"deltas":true}`
	}
	replies := make([]chan reply, n)
	for i := range n {
		replies[i] = h.callAsync("channel.open", fmt.Appendf(nil, `{"channel":%q,"topic":%q,"source":%q%s}`, h.names[i], topic, source, opts))
	}
	deadline := time.Now().Add(setupTimeout)
	for i, ch := range replies {
		if _, err := h.await(ch, time.Until(deadline), "channel.open "+h.names[i]); err != nil {
			return err
		}
	}
	// Every window holds the first revision before the rounds start.
	t := h.expectAll(n, 1)
	_, err := h.wait(t, setupTimeout, "deltas: first applies")
	return err
}

// procCPU is the process's user + system CPU time so far (/proc/<pid>/stat, in clock
// ticks of 10 ms: USER_HZ is 100 on every Linux the harness runs on).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// diffCost measures, in this process, jsonpatch.Diff between two consecutive documents
// of the host cell and jsonpatch.Apply of the one-leaf patch to the 1 MiB document: the
// diff's share of the sidecar's CPU per change, and one window's apply work. Each is the
// process's CPU time (getrusage, garbage collection included, as the sidecar's figure
// includes its own) over a loop, so that other work on the machine does not count.
func diffCost() (diffNs, applyNs float64, patchBytes int) {
	// Two consecutive states as the cells have them after their first change: each the
	// previous one with one leaf changed, both as Apply writes them (compact). payload
	// itself is padded with spaces at its end, so a diff from it has no common tail.
	var docs [2][]byte
	var p jsonpatch.Patch
	doc := payload(deltaDocSize)
	for k := range 2 {
		var err error
		if p, err = jsonpatch.DecodePatch(leafPatch(k)); err != nil {
			return 0, 0, 0
		}
		if doc, err = jsonpatch.Apply(doc, p); err != nil {
			return 0, 0, 0
		}
		docs[k] = doc
	}
	d, err := jsonpatch.Diff(docs[0], docs[1])
	if err != nil {
		return 0, 0, 0
	}
	diffNs = cpuPerOp(func() { _, _ = jsonpatch.Diff(docs[0], docs[1]) })
	applyNs = cpuPerOp(func() { _, _ = jsonpatch.Apply(docs[0], p) })
	return diffNs, applyNs, len(d)
}

// cpuPerOp runs f (a few times first, unmeasured) until it has taken 300 ms of CPU or
// 500 calls, and returns the process CPU time per call in nanoseconds.
func cpuPerOp(f func()) float64 {
	for range 3 {
		f()
	}
	runtime.GC()
	start := processCPU()
	if start == 0 {
		return 0
	}
	n := 0
	for n < 500 && processCPU()-start < 300*time.Millisecond {
		f()
		n++
	}
	return float64(processCPU()-start) / float64(n)
}

// deltaWindows are the windows of a deltas cell: one state per channel, and workers that
// do each apply as the SDK does. Channel i is always handled by worker i % workers, so a
// channel's applies are handled in the order they came; the workers run in parallel, as
// windows in their own processes would (on the cores this machine has).
type deltaWindows struct {
	h      *host
	queues []chan windowJob
	wg     sync.WaitGroup
	state  []windowState // state[i] is touched only by channel i's worker
	// mode is how the windows take a patch: as the SDK does by default (bytes, applied
	// with jsonpatch.ApplyValid), as it does with freezeData (parsed data, applyTree:
	// tree.go), or not at all (the diagnostic cell: the base checked and acknowledged,
	// the windows' data going stale).
	mode windowMode

	applies, deltas, bytes, mismatch, failed, workNs atomic.Int64
}

// windowJob is an apply's line, or fn to run between applies.
type windowJob struct {
	line []byte
	fn   func()
}

type windowState struct {
	epoch, rev string
	data       []byte // the data last applied; nil: none
	tree       any    // with freezeData, the data last applied, parsed; valid when hasTree
	hasTree    bool
}

type windowCounters struct{ applies, deltas, bytes, mismatch, failed, workNs int64 }

func newDeltaWindows(h *host, n int) *deltaWindows {
	w := &deltaWindows{h: h, state: make([]windowState, n)}
	workers := max(1, min(n, runtime.GOMAXPROCS(0)))
	for range workers {
		q := make(chan windowJob, 4*n)
		w.queues = append(w.queues, q)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for job := range q {
				if job.fn != nil {
					job.fn()
				} else {
					w.handle(job.line)
				}
			}
		}()
	}
	h.applier = w.take
	return w
}

// take runs on the host's reader: it copies the frame (the window's own copy of what it
// received) and queues it for the channel's worker.
func (w *deltaWindows) take(line []byte, f *frame) {
	i, ok := w.h.index[string(f.channel)]
	if !ok {
		w.h.noteError("apply for an unknown channel: " + bounded(line))
		return
	}
	w.bytes.Add(int64(len(line) + 1))
	w.queues[i%len(w.queues)] <- windowJob{line: clone(line)}
}

func (w *deltaWindows) stop() {
	for _, q := range w.queues {
		close(q)
	}
	w.wg.Wait()
}

// corrupt changes channel i's state on its worker, between two of its applies.
func (w *deltaWindows) corrupt(i int, change func(*windowState)) {
	done := make(chan struct{})
	w.queues[i%len(w.queues)] <- windowJob{fn: func() { change(&w.state[i]); close(done) }}
	<-done
}

// allHold reports whether every window holds revision rev with exactly data (compared
// compact: Apply's output is compact, the store's data is what state.patch wrote).
func (w *deltaWindows) allHold(rev string, data []byte) bool {
	var want bytes.Buffer
	if json.Compact(&want, data) != nil {
		return false
	}
	wantTree, err := decodeTree(data)
	if err != nil {
		return false
	}
	var ok atomic.Bool
	ok.Store(true)
	var wg sync.WaitGroup
	for i := range w.state {
		wg.Add(1)
		w.queues[i%len(w.queues)] <- windowJob{fn: func() {
			defer wg.Done()
			s := &w.state[i]
			if w.mode == windowsFreezeData {
				if s.rev != rev || !s.hasTree || !treeEqual(s.tree, wantTree) {
					ok.Store(false)
				}
				return
			}
			var got bytes.Buffer
			if s.rev != rev || s.data == nil || json.Compact(&got, s.data) != nil || !bytes.Equal(got.Bytes(), want.Bytes()) {
				ok.Store(false)
			}
		}}
	}
	wg.Wait()
	return ok.Load()
}

func (w *deltaWindows) resetCounters() {
	for _, c := range []*atomic.Int64{&w.applies, &w.deltas, &w.bytes, &w.mismatch, &w.failed, &w.workNs} {
		c.Store(0)
	}
}

func (w *deltaWindows) counters() windowCounters {
	return windowCounters{w.applies.Load(), w.deltas.Load(), w.bytes.Load(), w.mismatch.Load(), w.failed.Load(), w.workNs.Load()}
}

// applyMsg is what a window reads from an apply request.
type applyMsg struct {
	id, channel, revision, epoch, base, patch, data []byte
	deleted                                         bool
}

// handle is one window's apply: full data is kept as it came; a patch is checked against
// the revision the window holds and applied to its data, or answered -32011.
func (w *deltaWindows) handle(line []byte) {
	t0 := time.Now()
	m, ok := parseApply(line)
	if !ok {
		w.h.noteError("an apply the windows cannot read: " + bounded(line))
		return
	}
	i := w.h.index[string(m.channel)]
	rev, ok := parseUint(m.revision)
	if !ok {
		w.h.noteError("apply with a bad revision: " + bounded(line))
		return
	}
	s := &w.state[i]
	if m.patch != nil {
		held := s.data != nil
		if w.mode == windowsFreezeData {
			held = s.hasTree
		}
		if !held || s.rev != string(m.base) || s.epoch != string(m.epoch) {
			w.mismatch.Add(1)
			w.reject(m.id, "baseMismatch", s.rev, fmt.Sprintf("delta rejected: the window holds revision %q, the patch is from %q", s.rev, m.base))
			w.workNs.Add(int64(time.Since(t0)))
			return
		}
		p, err := jsonpatch.DecodePatch(m.patch)
		out, tree := s.data, s.tree
		switch {
		case err != nil || w.mode == windowsNoApply:
		case w.mode == windowsFreezeData:
			tree, err = applyTree(s.tree, p)
		default:
			// s.data is compact, valid JSON: Compact made it from the full data, or
			// Apply made it from the previous patch.
			out, err = jsonpatch.ApplyValid(s.data, p)
		}
		if err != nil {
			w.failed.Add(1)
			w.reject(m.id, "patchFailed", s.rev, "delta rejected: the patch does not apply to the window's data: "+err.Error())
			w.workNs.Add(int64(time.Since(t0)))
			return
		}
		s.data, s.tree = out, tree
		w.deltas.Add(1)
	} else if w.mode == windowsFreezeData {
		// JSON.parse of the full data (deep-frozen by the SDK as it goes).
		tree, err := decodeTree(m.data)
		if err != nil {
			w.h.noteError("apply with data that is not JSON: " + bounded(line))
			return
		}
		s.tree, s.hasTree = tree, !m.deleted
	} else {
		// What any window does with full data: read all of it (a webview's JSON.parse);
		// here json.Compact, which checks every byte and keeps the compact copy a later
		// patch applies to.
		var c bytes.Buffer
		c.Grow(len(m.data))
		if err := json.Compact(&c, m.data); err != nil {
			w.h.noteError("apply with data that is not JSON: " + bounded(line))
			return
		}
		s.data = c.Bytes()
		if m.deleted {
			s.data = nil
		}
	}
	s.rev, s.epoch = string(m.revision), string(m.epoch)
	w.applies.Add(1)
	w.workNs.Add(int64(time.Since(t0)))
	w.h.markApplied(i, rev)
	ack := make([]byte, 0, 48)
	ack = append(ack, `{"jsonrpc":"2.0","id":`...)
	ack = append(ack, m.id...)
	ack = append(ack, `,"result":{}}`+"\n"...)
	w.h.w.send(nil, ack)
}

// reject answers -32011 as the contract says: the sidecar then sends the full data.
func (w *deltaWindows) reject(id []byte, reason, local, msg string) {
	e := map[string]any{"code": -32011, "message": msg, "data": map[string]any{"reason": reason}}
	if local != "" {
		e["data"].(map[string]any)["localRevision"] = local
	}
	b, _ := json.Marshal(e)
	out := append(append(append(append([]byte(`{"jsonrpc":"2.0","id":`), id...), `,"error":`...), b...), "}\n"...)
	w.h.w.send(nil, out)
}

// parseApply reads an apply request. The sidecar writes a full apply's data last, after
// its other params, and the envelope ends right after (rpc/wire.go), so the data is taken
// as the rest of the line without scanning it, as the harness's host does; a delta's
// params are small and read member by member.
func parseApply(b []byte) (m applyMsg, ok bool) {
	_, _, ok = members(b, skipWS(b, 0), func(key []byte, i int) (end int, stop, ok bool) {
		if string(key) == "params" {
			return parseApplyParams(b, i, &m)
		}
		end, ok = skipValue(b, i)
		if !ok {
			return 0, false, false
		}
		if string(key) == "id" {
			m.id = b[i:end]
		}
		return end, false, true
	})
	return m, ok && m.id != nil && m.channel != nil && m.revision != nil
}

// parseApplyParams reads an apply's params; stop is true when it took the data as the
// rest of the line.
func parseApplyParams(b []byte, i int, m *applyMsg) (end int, stop, ok bool) {
	return members(b, i, func(key []byte, i int) (end int, stop, ok bool) {
		switch string(key) {
		case "data":
			rest := bytes.TrimRight(b[i:], " \t\r\n")
			if !bytes.HasSuffix(rest, []byte("}}")) {
				return 0, false, false
			}
			m.data = bytes.TrimRight(rest[:len(rest)-2], " \t\r\n")
			return len(b), true, true
		case "channel", "revision", "epoch", "baseRevision":
			s, end, ok := readString(b, i)
			switch string(key) {
			case "channel":
				m.channel = s
			case "revision":
				m.revision = s
			case "epoch":
				m.epoch = s
			default:
				m.base = s
			}
			return end, false, ok
		}
		end, ok = skipValue(b, i)
		if !ok {
			return 0, false, false
		}
		switch string(key) {
		case "patch":
			m.patch = b[i:end]
		case "deleted":
			m.deleted = string(b[i:end]) == "true"
		}
		return end, false, true
	})
}
