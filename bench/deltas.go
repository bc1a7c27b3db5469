package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/state-sync/state-sync/internal/jsonpatch"
)

// Deltas (issue 15): what an apply costs when a window takes patches.
//
//   - store: 100 windows on a 1 MiB store topic, one leaf changed by state.patch per round:
//     bytes per apply, and state.patch → every window applied, p50, as a ratio to the
//     1 KiB fan-out (100 windows, invalidate → applied) of the same run; "today" is the
//     same topic with windows that did not opt in (full data).
//   - host: a host topic with a 1 MiB snapshot, one key changed per round, 10 windows:
//     the sidecar's CPU per change with deltas and without, and the share of it that is
//     the diff (jsonpatch.Diff of the same two documents, timed in this process).
//
// The variants of a cell run side by side, one sidecar each, their rounds alternating, so
// that a change in the machine's load hits all alike.

type deltaResult struct {
	Channels  int     `json:"channels"`
	SizeBytes int     `json:"sizeBytes"`
	Rounds    int     `json:"rounds"`
	Latency   dist    `json:"latency"`              // state.patch → every window applied (store)
	FanOut    dist    `json:"fanOut1KiB"`           // the 1 KiB fan-out, same run (store)
	Ratio     float64 `json:"ratioToFanOutP50"`     // Latency.P50 / FanOut.P50
	Bytes     float64 `json:"bytesPerApply"`        // apply frames, with deltas
	Full      dist    `json:"fullLatency"`          // today: windows without deltas
	FullBytes float64 `json:"fullBytesPerApply"`    // today
	Deltas    int64   `json:"applies"`              // applies counted for Bytes
	ErrorNote int64   `json:"errorNotifications"`   // over every sidecar of the cell
	CPU       float64 `json:"cpuMsPerChange"`       // host cell, deltas on
	FullCPU   float64 `json:"fullCpuMsPerChange"`   // host cell, deltas off
	Diff      float64 `json:"diffMsPerChange"`      // jsonpatch.Diff of one change, median
	Apply     float64 `json:"applyMs"`              // store cell: jsonpatch.Apply of the round's patch to 1 MiB, in the harness, median
	DiffShare float64 `json:"diffShareOfCpu"`       // Diff / CPU
	PatchLen  int     `json:"patchBytes,omitempty"` // the patch of one change
}

// onePriceChange returns data with item 7's price set to v: one leaf of payload's state.
func onePriceChange(data []byte, v uint64) []byte {
	old := []byte(`{"id":7,"name":"item-7","price":17.07,`)
	if !bytes.Contains(data, old) {
		panic("bench: payload no longer has item 7 as onePriceChange expects")
	}
	return bytes.Replace(data, old, fmt.Appendf(nil, `{"id":7,"name":"item-7","price":%d,`, v), 1)
}

// openWith opens channels [0, n) on topicName with source and raw options JSON ("" for none).
func openWith(h *host, n int, source, options string) error {
	replies := make([]chan reply, n)
	for i := range n {
		p := fmt.Sprintf(`{"channel":%q,"topic":%q,"source":%q`, h.names[i], topicName, source)
		if options != "" {
			p += `,"options":` + options
		}
		replies[i] = h.callAsync("channel.open", []byte(p+"}"))
	}
	deadline := time.Now().Add(setupTimeout)
	for i, ch := range replies {
		if _, err := h.await(ch, time.Until(deadline), "channel.open "+h.names[i]); err != nil {
			return err
		}
	}
	return nil
}

// cpuTicks is the child's user+system CPU time from /proc/PID/stat (Linux), in clock
// ticks of 10 ms (USER_HZ is 100 on every Linux this runs on).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading a child's CPU time (Linux /proc only): %w", err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, bounded(b))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, bounded(b))
	}
	return utime + stime, nil
}

const tickMs = 10.0

// storeDeltas is the store cell.
func storeDeltas(bin string, channels, size int, b, bFull budget) (res deltaResult, err error) {
	res = deltaResult{Channels: channels, SizeBytes: size}
	data := payload(size)
	start := func(options string, source string) (*host, error) {
		h, err := startSidecar(bin, nil, channels)
		if err != nil {
			return nil, err
		}
		if err := h.initialize(setupTimeout); err != nil {
			return h, err
		}
		if source == "store" {
			if _, err := h.call("state.set", append(append([]byte(`{"topic":"`+topicName+`","data":`), data...), '}'), roundTimeout); err != nil {
				return h, err
			}
		}
		return h, openWith(h, channels, source, options)
	}
	var deltas, full, fan *host
	defer func() {
		for _, h := range []*host{deltas, full, fan} {
			if h != nil {
				closeHost(h, &err)
			}
		}
	}()
	if deltas, err = start(`{"deltas":true}`, "store"); err != nil {
		return res, err
	}
	if full, err = start("", "store"); err != nil {
		return res, err
	}
	small := payload(1 << 10)
	fan, err = startSidecar(bin, nil, channels)
	if err != nil {
		return res, err
	}
	if err := fan.initialize(setupTimeout); err != nil {
		return res, err
	}
	fan.setSnapshot(1, small)
	if err := openWith(fan, channels, "host", ""); err != nil {
		return res, err
	}

	patchRound := func(h *host, rev uint64, what string) (time.Duration, error) {
		params := fmt.Appendf(nil, `{"topic":%q,"patch":[{"op":"replace","path":"/items/7/price","value":%d}]}`, topicName, rev)
		t := h.expectAll(channels, rev)
		t0 := time.Now()
		result, err := h.call("state.patch", params, roundTimeout)
		if err != nil {
			return 0, err
		}
		answered := time.Now()
		if !bytes.Contains(result, []byte(`"revision":"`+strconv.FormatUint(rev, 10)+`"`)) {
			return 0, fmt.Errorf("%s: state.patch answered %s, want revision %d", what, bounded(result), rev)
		}
		at, err := h.wait(t, roundTimeout, what)
		if err != nil {
			return 0, err
		}
		if answered.After(at) {
			at = answered // the round ends when both the answer and every apply are in
		}
		return at.Sub(t0), nil
	}
	fanRound := func(rev uint64, what string) (time.Duration, error) {
		fan.setSnapshot(rev, small)
		t := fan.expectAll(channels, rev)
		t0 := time.Now()
		fan.notify(invalidateLine(nil, rev))
		at, err := fan.wait(t, roundTimeout, what)
		return at.Sub(t0), err
	}

	var patched, fanned, fulls, applies []time.Duration
	ops, err := jsonpatch.DecodePatch([]byte(`[{"op":"replace","path":"/items/7/price","value":1}]`))
	if err != nil {
		return res, err
	}
	rev := uint64(1)
	var bytesBefore, appliesBefore, fullBytesBefore, fullAppliesBefore int64
	deadline := time.Now().Add(b.maxTime)
	for round := 0; round < b.warmup+b.rounds; round++ {
		if round >= b.warmup+b.minRounds && time.Now().After(deadline) {
			break
		}
		if round == b.warmup {
			bytesBefore, appliesBefore = deltas.applyBytes.Load(), deltas.appliesTotal.Load()
			fullBytesBefore, fullAppliesBefore = full.applyBytes.Load(), full.appliesTotal.Load()
		}
		rev++
		d, err := patchRound(deltas, rev, fmt.Sprintf("deltas store round %d", round))
		if err != nil {
			return res, err
		}
		f, err := fanRound(rev, fmt.Sprintf("deltas 1 KiB fan-out round %d", round))
		if err != nil {
			return res, err
		}
		// Today's full applies move 100 MiB a round: fewer of them.
		var today time.Duration
		if round < bFull.warmup+bFull.rounds {
			if today, err = patchRound(full, rev, fmt.Sprintf("deltas store (full) round %d", round)); err != nil {
				return res, err
			}
		}
		// What state.patch's Apply costs by itself, timed here between the rounds: the
		// part of the round that grows with the state.
		t0 := time.Now()
		if _, err := jsonpatch.Apply(data, ops); err != nil {
			return res, err
		}
		applied := time.Since(t0)
		if round >= b.warmup {
			patched, fanned, applies = append(patched, d), append(fanned, f), append(applies, applied)
			if round < bFull.warmup+bFull.rounds && round >= bFull.warmup {
				fulls = append(fulls, today)
			}
		}
	}
	res.Rounds = len(patched)
	res.Latency, res.FanOut, res.Full = summarize(patched), summarize(fanned), summarize(fulls)
	res.Apply = summarize(applies).P50
	if res.FanOut.P50 > 0 {
		res.Ratio = res.Latency.P50 / res.FanOut.P50
	}
	if n := deltas.appliesTotal.Load() - appliesBefore; n > 0 {
		res.Deltas = n
		res.Bytes = float64(deltas.applyBytes.Load()-bytesBefore) / float64(n)
	}
	if n := full.appliesTotal.Load() - fullAppliesBefore; n > 0 {
		res.FullBytes = float64(full.applyBytes.Load()-fullBytesBefore) / float64(n)
	}
	res.ErrorNote = deltas.errorNotifs.Load() + full.errorNotifs.Load() + fan.errorNotifs.Load()
	return res, nil
}

// hostDeltas is the host cell: CPU per change, deltas on and off, and the diff's share.
func hostDeltas(bin string, channels, size int, b budget) (res deltaResult, err error) {
	res = deltaResult{Channels: channels, SizeBytes: size}
	base := payload(size)
	var on, off *host
	defer func() {
		for _, h := range []*host{on, off} {
			if h != nil {
				closeHost(h, &err)
			}
		}
	}()
	start := func(options string) (*host, error) {
		h, err := startSidecar(bin, nil, channels)
		if err != nil {
			return nil, err
		}
		if err := h.initialize(setupTimeout); err != nil {
			return h, err
		}
		h.setSnapshot(1, base)
		return h, openWith(h, channels, "host", options)
	}
	if on, err = start(`{"deltas":true}`); err != nil {
		return res, err
	}
	if off, err = start(""); err != nil {
		return res, err
	}
	round := func(h *host, rev uint64, data []byte, what string) error {
		h.setSnapshot(rev, data)
		t := h.expectAll(channels, rev)
		h.notify(invalidateLine(nil, rev))
		_, err := h.wait(t, roundTimeout, what)
		return err
	}
	var onTicks, offTicks int64
	var diffs []time.Duration
	prev := base
	rev := uint64(1)
	measured := 0
	deadline := time.Now().Add(b.maxTime)
	for r := 0; r < b.warmup+b.rounds; r++ {
		if r >= b.warmup+b.minRounds && time.Now().After(deadline) {
			break
		}
		rev++
		next := onePriceChange(base, rev)
		for _, v := range []struct {
			h     *host
			ticks *int64
			name  string
		}{{on, &onTicks, "on"}, {off, &offTicks, "off"}} {
			before, err := cpuTicks(v.h.pid)
			if err != nil {
				return res, err
			}
			if err := round(v.h, rev, next, fmt.Sprintf("deltas host (%s) round %d", v.name, r)); err != nil {
				return res, err
			}
			after, err := cpuTicks(v.h.pid)
			if err != nil {
				return res, err
			}
			if r >= b.warmup {
				*v.ticks += after - before
			}
		}
		t0 := time.Now()
		patch, err := jsonpatch.Diff(prev, next)
		d := time.Since(t0)
		if err != nil {
			return res, fmt.Errorf("jsonpatch.Diff: %w", err)
		}
		res.PatchLen = len(patch)
		if r >= b.warmup {
			diffs = append(diffs, d)
			measured++
		}
		prev = next
	}
	res.Rounds = measured
	if measured > 0 {
		res.CPU = float64(onTicks) * tickMs / float64(measured)
		res.FullCPU = float64(offTicks) * tickMs / float64(measured)
	}
	res.Diff = summarize(diffs).P50
	if res.CPU > 0 {
		res.DiffShare = res.Diff / res.CPU
	}
	res.ErrorNote = on.errorNotifs.Load() + off.errorNotifs.Load()
	return res, nil
}
