package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// storeResult is state.set → every channel applied, per backend.
type storeResult struct {
	Backend     string   `json:"backend"`
	Channels    int      `json:"channels"`
	SizeBytes   int      `json:"sizeBytes"`
	Rounds      int      `json:"rounds"`
	Latency     dist     `json:"latency"`
	ErrorNote   int64    `json:"errorNotifications"`
	FirstErrors []string `json:"firstErrors,omitempty"`
}

// storeRounds writes the topic with state.set and waits until the answer is read and
// every channel (source store) has applied the new revision.
func storeRounds(bin, backend string, channels, size int, b budget) (res storeResult, err error) {
	res = storeResult{Backend: backend, Channels: channels, SizeBytes: size}
	var args []string
	if backend == "file" {
		dir, err := os.MkdirTemp("", "statesync-bench-store-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		args = []string{"--store-file", filepath.Join(dir, "store.json")}
	}
	h, err := startHost(bin, args, channels)
	if err != nil {
		return res, err
	}
	defer closeHost(h, &err)
	if err := h.initialize(setupTimeout); err != nil {
		return res, err
	}
	data := payload(size)
	params := func() []byte {
		p := make([]byte, 0, len(data)+40)
		p = append(p, `{"topic":"`+topicName+`","data":`...)
		p = append(p, data...)
		return append(p, '}')
	}()
	set := func(want uint64) error {
		result, err := h.call("state.set", params, roundTimeout)
		if err != nil {
			return err
		}
		if !bytes.Contains(result, []byte(`"revision":"`+strconv.FormatUint(want, 10)+`"`)) {
			return fmt.Errorf("state.set: answered %s, want revision %d", bounded(result), want)
		}
		return nil
	}
	if err := set(1); err != nil {
		return res, err
	}
	if err := h.openChannels(channels, topicName, "store", setupTimeout); err != nil {
		return res, err
	}
	rev := uint64(1)
	var samples []time.Duration
	deadline := time.Now().Add(b.maxTime)
	for round := 0; round < b.warmup+b.rounds; round++ {
		if round >= b.warmup+b.minRounds && time.Now().After(deadline) {
			break
		}
		rev++
		t := h.expectAll(channels, rev)
		t0 := time.Now()
		if err := set(rev); err != nil {
			return res, err
		}
		answered := time.Now()
		at, err := h.wait(t, roundTimeout, fmt.Sprintf("store %s round %d", backend, round))
		if err != nil {
			return res, err
		}
		if answered.After(at) {
			at = answered // the round ends when both the answer and every apply are in
		}
		if round >= b.warmup {
			samples = append(samples, at.Sub(t0))
		}
	}
	res.Rounds = len(samples)
	res.Latency = summarize(samples)
	res.ErrorNote = h.errorNotifs.Load()
	res.FirstErrors = h.errors()
	return res, nil
}
