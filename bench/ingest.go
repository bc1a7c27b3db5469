package main

import (
	"fmt"
	"time"
)

// ingestResult is how fast the sidecar absorbs invalidate notifications.
type ingestResult struct {
	Name         string   `json:"name"`
	Channels     int      `json:"channels"`
	Events       int      `json:"events"`
	Seconds      float64  `json:"seconds"`
	PerSecond    float64  `json:"perSecond"`
	GetSnapshots int64    `json:"getSnapshots"`
	Applies      int64    `json:"applies"`
	ErrorNotifs  int64    `json:"errorNotifications"`
	FirstErrors  []string `json:"firstErrors,omitempty"`
}

// ingest writes count invalidate notifications for one topic with channels channels as
// fast as the pipe takes them, then one request: it is handled after every notification
// before it, so its answer marks the moment all were absorbed.
//
// stale: every revision is at or below what the channels hold, so each event is parsed,
// routed to every channel and dropped by the revision gate: the pure ingest path.
// Otherwise the revisions increase and the host's state follows them as they are written,
// so the sidecar also fetches and fans out while it reads.
func ingest(bin, name string, channels, count int, stale bool) (res ingestResult, err error) {
	res = ingestResult{Name: name, Channels: channels, Events: count}
	data := payload(1 << 10)
	h, err := startHost(bin, nil, channels)
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
	fetchesBefore := h.getSnapshots.Load()
	appliesBefore := h.appliesTotal.Load()
	t0 := time.Now()
	for _, c := range chunks {
		var before func()
		if !stale {
			last := c.last
			before = func() { h.setSnapshot(last, data) }
		}
		h.w.sendBulk(before, c.b)
	}
	if _, err := h.callAfterBulk("channel.status", fmt.Appendf(nil, `{"channel":%q}`, channelName(0)), roundTimeout); err != nil {
		return res, fmt.Errorf("ingest %s: %w", name, err)
	}
	elapsed := time.Since(t0)
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(count) / elapsed.Seconds()
	if !stale {
		// Every channel must still converge on the last revision.
		t := h.expectAll(channels, first+uint64(count)-1)
		if _, err := h.wait(t, roundTimeout, "ingest "+name); err != nil {
			return res, err
		}
	}
	res.GetSnapshots = h.getSnapshots.Load() - fetchesBefore
	res.Applies = h.appliesTotal.Load() - appliesBefore
	res.ErrorNotifs = h.errorNotifs.Load()
	res.FirstErrors = h.errors()
	return res, nil
}
