package main

import (
	"fmt"
	"time"
)

// fanoutResult is one cell of the fan-out table: N channels × snapshot size.
type fanoutResult struct {
	Channels     int      `json:"channels"`
	SizeBytes    int      `json:"sizeBytes"`
	Rounds       int      `json:"rounds"`
	Latency      dist     `json:"latency"`
	Floor        dist     `json:"floor"`
	RatioP50     float64  `json:"ratioP50"`
	RatioP99     float64  `json:"ratioP99"`
	GetSnapshots float64  `json:"getSnapshotsPerRound"`
	ErrorNotifs  int64    `json:"errorNotifications"`
	FirstErrors  []string `json:"firstErrors,omitempty"`
	PeakRSSBytes int64    `json:"peakRssBytes"`
	SlowFrames   int64    `json:"slowFrames"`
}

const topicName = "bench"

// fanout measures invalidate → every channel applied: the host bumps its revision, sends
// one invalidate notification, answers the one shared getSnapshot at once and acks every
// apply; a round ends when the last channel's apply for the new revision is read.
func fanout(bin string, channels, size int, b budget, fb budget) (res fanoutResult, err error) {
	res = fanoutResult{Channels: channels, SizeBytes: size}
	data := payload(size)
	h, err := startHost(bin, nil, channels)
	if err != nil {
		return res, err
	}
	defer closeHost(h, &err)
	if err := h.initialize(setupTimeout); err != nil {
		return res, err
	}
	rev := uint64(1)
	h.setSnapshot(rev, data)
	if err := h.openChannels(channels, topicName, "host", setupTimeout); err != nil {
		return res, err
	}
	fetchesBefore := h.getSnapshots.Load()
	var samples []time.Duration
	deadline := time.Now().Add(b.maxTime)
	measured := 0
	for round := 0; round < b.warmup+b.rounds; round++ {
		if round >= b.warmup+b.minRounds && time.Now().After(deadline) {
			break
		}
		if round == b.warmup {
			fetchesBefore = h.getSnapshots.Load()
		}
		rev++
		h.setSnapshot(rev, data)
		t := h.expectAll(channels, rev)
		msg := fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"invalidate","params":{"topic":%q,"revision":"%d"}}`+"\n", topicName, rev)
		t0 := time.Now()
		h.notify(msg)
		at, err := h.wait(t, roundTimeout, fmt.Sprintf("fan-out %d×%s round %d", channels, fmtBytes(int64(size)), round))
		if err != nil {
			return res, err
		}
		if round >= b.warmup {
			samples = append(samples, at.Sub(t0))
			measured++
		}
	}
	res.Rounds = measured
	res.Latency = summarize(samples)
	if measured > 0 {
		res.GetSnapshots = float64(h.getSnapshots.Load()-fetchesBefore) / float64(measured)
	}
	res.ErrorNotifs = h.errorNotifs.Load()
	res.FirstErrors = h.errors()
	res.SlowFrames = h.slowFrames.Load()
	res.PeakRSSBytes, _ = procStatus(h.pid, "VmHWM")

	floor, err := floorRounds(channels, data, fb)
	if err != nil {
		return res, err
	}
	res.Floor = summarize(floor)
	if res.Floor.P50 > 0 {
		res.RatioP50 = res.Latency.P50 / res.Floor.P50
		res.RatioP99 = res.Latency.P99 / res.Floor.P99
	}
	return res, nil
}
