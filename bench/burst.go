package main

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// burstResult is one burst: K invalidations on one topic with N channels.
type burstResult struct {
	Name         string   `json:"name"`
	Source       string   `json:"source"`
	Channels     int      `json:"channels"`
	Events       int      `json:"events"`
	Advancing    bool     `json:"hostStateAdvancing"`
	GetSnapshots int64    `json:"getSnapshots"`
	AppliesMin   uint32   `json:"appliesPerChannelMin"`
	AppliesMax   uint32   `json:"appliesPerChannelMax"`
	AppliesMean  float64  `json:"appliesPerChannelMean"`
	ConvergeMs   float64  `json:"convergeMs"`
	ErrorNotifs  int64    `json:"errorNotifications"`
	FirstErrors  []string `json:"firstErrors,omitempty"`
}

// burst sends K invalidations for revisions base+1 … base+K as fast as the pipe takes
// them and waits until every channel has applied base+K.
//
// By default the host's state is already at base+K when the burst starts: the host
// changed its state K times in a row and announces each change, which is what "a burst"
// means in DESIGN §4 (every getSnapshot returns the newest state). With advancing, the
// host's state follows the events as they are written, like a host that streams changes
// as they happen: every getSnapshot answered mid-burst returns an intermediate revision,
// so more fetches are needed, bounded by how often the sidecar finishes a fan-out cycle
// during the burst.
func burst(bin, name, source string, channels, events int, advancing bool) (res burstResult, err error) {
	res = burstResult{Name: name, Source: source, Channels: channels, Events: events, Advancing: advancing}
	data := payload(1 << 10)
	h, err := startHost(bin, nil, channels)
	if err != nil {
		return res, err
	}
	defer closeHost(h, &err)
	if err := h.initialize(setupTimeout); err != nil {
		return res, err
	}
	const base = 1000
	h.setSnapshot(base, data)
	if err := h.openChannels(channels, topicName, source, setupTimeout); err != nil {
		return res, err
	}
	final := uint64(base + events)
	lines := make([][]byte, 0, events/chunkEvents+1)
	var chunk []byte
	for i := 1; i <= events; i++ {
		chunk = invalidateLine(chunk, base+uint64(i))
		if i%chunkEvents == 0 || i == events {
			lines = append(lines, chunk)
			chunk = nil
		}
	}
	fetchesBefore := h.getSnapshots.Load()
	appliesBefore := h.appliesOf(channels)
	if !advancing {
		h.setSnapshot(final, data)
	}
	t := h.expectAll(channels, final)
	t0 := time.Now()
	for i, c := range lines {
		var before func()
		if advancing {
			last := min(uint64(base+(i+1)*chunkEvents), final)
			before = func() { h.setSnapshot(last, data) }
		}
		h.w.sendBulk(before, c)
	}
	at, err := h.wait(t, roundTimeout, fmt.Sprintf("burst %s", name))
	if err != nil {
		return res, err
	}
	res.ConvergeMs = ms(at.Sub(t0))
	// Let the tail of the burst (events still in the pipe when the last apply was read)
	// be handled, so that late fetches count too: a request round trip is ordered after it.
	if _, err := h.callAfterBulk("channel.status", fmt.Appendf(nil, `{"channel":%q}`, channelName(0)), setupTimeout); err != nil {
		return res, err
	}
	time.Sleep(20 * time.Millisecond) // a fetch started by the tail would be answered by now
	res.GetSnapshots = h.getSnapshots.Load() - fetchesBefore
	after := h.appliesOf(channels)
	per := make([]uint32, channels)
	var sum float64
	for i := range per {
		per[i] = after[i] - appliesBefore[i]
		sum += float64(per[i])
	}
	res.AppliesMin, res.AppliesMax = slices.Min(per), slices.Max(per)
	res.AppliesMean = sum / float64(channels)
	res.ErrorNotifs = h.errorNotifs.Load()
	res.FirstErrors = h.errors()
	return res, nil
}

// chunkEvents is how many notifications one write carries in bursts and ingest.
const chunkEvents = 512

func invalidateLine(b []byte, rev uint64) []byte {
	b = append(b, `{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"`+topicName+`","revision":"`...)
	b = strconv.AppendUint(b, rev, 10)
	return append(b, "\"}}\n"...)
}

// closeHost closes h and reports a bad exit through err when nothing else failed.
func closeHost(h *host, err *error) {
	if cerr := h.close(10 * time.Second); cerr != nil && *err == nil {
		*err = cerr
	}
}
