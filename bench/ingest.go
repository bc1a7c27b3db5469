package main

import (
	"fmt"
	"strconv"
	"time"
)

// ingestResult is how fast the sidecar absorbs invalidate notifications, next to how fast
// floorchild reads the same bytes (stale events only: there the sidecar does nothing the
// floor skips but parse, route and gate).
type ingestResult struct {
	Name           string   `json:"name"`
	Stale          bool     `json:"stale"`
	Channels       int      `json:"channels"`
	Events         int      `json:"events"`
	Seconds        float64  `json:"seconds"`
	PerSecond      float64  `json:"perSecond"`
	FloorPerSecond float64  `json:"floorPerSecond,omitempty"`
	Ratio          float64  `json:"floorRatio,omitempty"` // floor rate / sidecar rate: how many times slower
	GetSnapshots   int64    `json:"getSnapshots"`
	Applies        int64    `json:"applies"`
	ErrorNotifs    int64    `json:"errorNotifications"`
	FirstErrors    []string `json:"firstErrors,omitempty"`
}

// ingest writes count invalidate notifications for one topic with channels channels as
// fast as the pipe takes them, then one request: the sidecar reads its input in order, so
// the answer marks the moment every notification was read and routed.
//
// stale: every revision is at or below what the channels hold, so each event is parsed,
// routed to every channel and dropped by the revision gate: the pure ingest path; the
// floor child reads the same lines and answers the same request. Otherwise the revisions
// increase and the host's state follows them as they are written, so the sidecar also
// fetches and fans out while it reads (no floor: the floor child does not fan out per
// event).
//
// The floor pours floorCount events (the unscaled count: a pipe's rate is measured on
// enough bytes to dwarf one round trip).
func ingest(bin, floorBin, name string, channels, count, floorCount int, stale bool) (res ingestResult, err error) {
	res = ingestResult{Name: name, Stale: stale, Channels: channels, Events: count}
	data := payload(1 << 10)
	h, err := startSidecar(bin, nil, channels)
	if err != nil {
		return res, err
	}
	defer closeHost(h, &err)
	if err := h.initialize(setupTimeout); err != nil {
		return res, err
	}
	base := uint64(1000)
	if stale {
		base = uint64(count) + 1000
	}
	h.setSnapshot(base, data)
	if err := h.openChannels(channels, topicName, "host", setupTimeout); err != nil {
		return res, err
	}
	first := base + 1
	if stale {
		first = 1
	}
	fetchesBefore := h.getSnapshots.Load()
	appliesBefore := h.appliesTotal.Load()
	elapsed, err := pour(h, first, count, !stale, data, name)
	if err != nil {
		return res, err
	}
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(count) / elapsed.Seconds()
	if !stale {
		// Every channel must still converge on the last revision.
		t := h.expectAll(channels, first+uint64(count)-1)
		if _, err := h.wait(t, roundTimeout, "ingest "+name); err != nil {
			return res, err
		}
	}
	if err := h.close(10 * time.Second); err != nil {
		return res, err
	}
	res.GetSnapshots = h.getSnapshots.Load() - fetchesBefore
	res.Applies = h.appliesTotal.Load() - appliesBefore
	res.ErrorNotifs = h.errorNotifs.Load()
	res.FirstErrors = h.errors()
	if !stale {
		return res, nil
	}

	f, err := startHost(floorBin, []string{"0"}, 0)
	if err != nil {
		return res, fmt.Errorf("starting the floor child: %w", err)
	}
	defer closeHost(f, &err)
	floor, err := pour(f, 1, floorCount, false, data, "floor of "+name)
	if err != nil {
		return res, err
	}
	res.FloorPerSecond = float64(floorCount) / floor.Seconds()
	res.Ratio = res.FloorPerSecond / res.PerSecond
	return res, nil
}

// pour writes count invalidations from revision first on, in chunks, then a channel.status
// request behind them, and returns the time until its answer. advance publishes each
// chunk's last revision right before the chunk is written.
func pour(h *host, first uint64, count int, advance bool, data []byte, what string) (time.Duration, error) {
	type chunk struct {
		b    []byte
		last uint64
	}
	var chunks []chunk
	var cur []byte
	for i := range count {
		rev := first + uint64(i)
		cur = invalidateLine(cur, rev)
		if (i+1)%chunkEvents == 0 || i == count-1 {
			chunks = append(chunks, chunk{cur, rev})
			cur = nil
		}
	}
	t0 := time.Now()
	for _, c := range chunks {
		var before func()
		if advance {
			before = func() { h.setSnapshot(c.last, data) }
		}
		h.w.sendBulk(before, c.b)
	}
	if _, err := h.callAfterBulk("channel.status", []byte(`{"channel":"`+channelName(0)+`"}`), ingestTimeout); err != nil {
		return 0, fmt.Errorf("ingest %s: %w", what, err)
	}
	return time.Since(t0), nil
}

// ingestName names an ingest case in tables.
func ingestName(stale bool, channels int) string {
	if stale {
		return "stale revisions, " + strconv.Itoa(channels) + " channels (parse, route, revision gate)"
	}
	return "increasing revisions, " + strconv.Itoa(channels) + " channels (fetch + fan-out while reading)"
}
