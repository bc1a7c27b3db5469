package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// startupResult is cold start, memory and size.
type startupResult struct {
	ColdStart      dist  `json:"coldStart"`
	ColdStartFloor dist  `json:"coldStartFloor"`
	RSSIdle        int64 `json:"rssIdleBytes"`
	RSSChannels    int64 `json:"rssWithChannelsBytes"`
	PeakChannels   int64 `json:"peakRssWithChannelsBytes"`
	Channels       int   `json:"channels"`
	BinaryBytes    int64 `json:"binaryBytes"`
}

var initializeLine = []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1"}}` + "\n")

// coldStart times spawn → initialize answered, spawns times. The floor is the same with
// the trivial echo child (this binary: a Go program that reads a line and writes it back).
func coldStart(path string, args []string, spawns int) ([]time.Duration, error) {
	var samples []time.Duration
	for i := range spawns {
		d, err := spawnOnce(path, args)
		if err != nil {
			return nil, fmt.Errorf("cold start %d of %s: %w", i, path, err)
		}
		samples = append(samples, d)
	}
	return samples, nil
}

func spawnOnce(path string, args []string) (time.Duration, error) {
	cmd := exec.Command(path, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	if _, err := stdin.Write(initializeLine); err != nil {
		return 0, err
	}
	type line struct {
		b   []byte
		err error
	}
	got := make(chan line, 1)
	go func() {
		b, err := bufio.NewReader(stdout).ReadBytes('\n')
		got <- line{b, err}
	}()
	select {
	case l := <-got:
		d := time.Since(t0)
		if l.err != nil {
			return 0, l.err
		}
		if !bytes.Contains(l.b, []byte(`"id":1`)) || bytes.Contains(l.b, []byte(`"error"`)) {
			return 0, fmt.Errorf("unexpected answer to initialize: %s", bounded(l.b))
		}
		return d, nil
	case <-time.After(roundTimeout):
		return 0, fmt.Errorf("no answer to initialize within %s", roundTimeout)
	}
}

// memory measures RSS once initialized and idle, then with channels open (source host,
// 1 KiB snapshot, every channel applied once more after opening).
func memory(bin string, channels int) (idle, open, peak int64, err error) {
	h, err := startHost(bin, nil, channels)
	if err != nil {
		return 0, 0, 0, err
	}
	defer closeHost(h, &err)
	if err := h.initialize(setupTimeout); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(100 * time.Millisecond)
	if idle, err = procStatus(h.pid, "VmRSS"); err != nil {
		return 0, 0, 0, err
	}
	data := payload(1 << 10)
	h.setSnapshot(1, data)
	if err := h.openChannels(channels, topicName, "host", setupTimeout); err != nil {
		return 0, 0, 0, err
	}
	h.setSnapshot(2, data)
	t := h.expectAll(channels, 2)
	h.notify(invalidateLine(nil, 2))
	if _, err := h.wait(t, roundTimeout, "memory: fan-out to every channel"); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(100 * time.Millisecond)
	if open, err = procStatus(h.pid, "VmRSS"); err != nil {
		return 0, 0, 0, err
	}
	peak, _ = procStatus(h.pid, "VmHWM")
	return idle, open, peak, nil
}

// procStatus reads a "kB" field of /proc/PID/status (Linux) in bytes.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the sidecar's memory (Linux /proc only): %w", err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		name, value, ok := strings.Cut(l, ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		if err != nil {
			return 0, err
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
