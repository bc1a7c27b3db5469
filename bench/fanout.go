package main

import (
	"fmt"
	"time"
)

// fanoutResult is one cell of the fan-out table: N channels × snapshot size.
type fanoutResult struct {
	Channels          int      `json:"channels"`
	SizeBytes         int      `json:"sizeBytes"`
	Rounds            int      `json:"rounds"`
	Latency           dist     `json:"latency"`
	Floor             dist     `json:"floor"`
	RatioP50          float64  `json:"ratioP50"`
	RatioP99          float64  `json:"ratioP99"`
	GetSnapshots      float64  `json:"getSnapshotsPerRound"`
	FloorGetSnapshots float64  `json:"floorGetSnapshotsPerRound"`
	ErrorNotifs       int64    `json:"errorNotifications"`
	FirstErrors       []string `json:"firstErrors,omitempty"`
	PeakRSSBytes      int64    `json:"peakRssBytes"`
	SlowFrames        int64    `json:"slowFrames"`
}

const topicName = "bench"

// fanout measures invalidate → every channel applied on the sidecar, then the same rounds
// against the floor child, each process alone on the machine's share the harness has.
func fanout(bin, floorBin string, channels, size int, b budget, fb budget) (res fanoutResult, err error) {
	res = fanoutResult{Channels: channels, SizeBytes: size}
	data := payload(size)
	h, err := startSidecar(bin, nil, channels)
	if err != nil {
		return res, err
	}
	defer closeHost(h, &err)
	if err := h.initialize(setupTimeout); err != nil {
		return res, err
	}
	h.setSnapshot(1, data)
	if err := h.openChannels(channels, topicName, "host", setupTimeout); err != nil {
		return res, err
	}
	samples, perRound, err := rounds(h, channels, data, 1, b, fmt.Sprintf("fan-out %d×%s", channels, fmtBytes(int64(size))))
	if err != nil {
		return res, err
	}
	res.Rounds = len(samples)
	res.Latency = summarize(samples)
	res.GetSnapshots = perRound
	res.ErrorNotifs = h.errorNotifs.Load()
	res.FirstErrors = h.errors()
	res.SlowFrames = h.slowFrames.Load()
	res.PeakRSSBytes, _ = procStatus(h.pid, "VmHWM")
	if err := h.close(10 * time.Second); err != nil {
		return res, err
	}

	floor, floorPerRound, err := floorFanout(floorBin, channels, data, fb)
	if err != nil {
		return res, err
	}
	res.Floor = summarize(floor)
	res.FloorGetSnapshots = floorPerRound
	if res.Floor.P50 > 0 {
		res.RatioP50 = res.Latency.P50 / res.Floor.P50
		res.RatioP99 = res.Latency.P99 / res.Floor.P99
	}
	return res, nil
}

// rounds measures fan-out rounds on h, whose channels [0, n) hold rev: the host publishes
// the next revision, sends one invalidate notification, answers getSnapshot at once and
// acks every apply; a round ends when the last channel's apply of the new revision is
// read. perRound is getSnapshot requests per measured round.
func rounds(h *host, n int, data []byte, rev uint64, b budget, what string) (samples []time.Duration, perRound float64, err error) {
	fetchesBefore := h.getSnapshots.Load()
	deadline := time.Now().Add(b.maxTime)
	for round := 0; round < b.warmup+b.rounds; round++ {
		if round >= b.warmup+b.minRounds && time.Now().After(deadline) {
			break
		}
		if round == b.warmup {
			fetchesBefore = h.getSnapshots.Load()
		}
		rev++
		h.setSnapshot(rev, data)
		t := h.expectAll(n, rev)
		msg := invalidateLine(nil, rev)
		t0 := time.Now()
		h.notify(msg)
		at, err := h.wait(t, roundTimeout, fmt.Sprintf("%s round %d", what, round))
		if err != nil {
			return nil, 0, err
		}
		if round >= b.warmup {
			samples = append(samples, at.Sub(t0))
		}
	}
	if len(samples) > 0 {
		perRound = float64(h.getSnapshots.Load()-fetchesBefore) / float64(len(samples))
	}
	return samples, perRound, nil
}
