package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// startupResult is cold start, memory and size.
type startupResult struct {
	ColdStart      dist    `json:"coldStart"`
	ColdStartFloor dist    `json:"coldStartFloor"` // bench/testdata/handshake
	ColdStartRatio float64 `json:"coldStartRatio"`
	// Inits is the sidecar's package initialisation, most expensive first (median over
	// spawns, GODEBUG=inittrace=1); InitsDoneMs when the last one ended, after the
	// runtime started, next to the same for the handshake program.
	Inits            []initCost      `json:"inits,omitempty"`
	Variants         []variantResult `json:"importVariants,omitempty"`
	InitsDoneMs      float64         `json:"initsDoneMs"`
	FloorInitsDoneMs float64         `json:"floorInitsDoneMs"`
	InitsClockMs     float64         `json:"initsClockMs"`
	RSSIdle          int64           `json:"rssIdleBytes"`
	RSSChannels      int64           `json:"rssWithChannelsBytes"`
	PeakChannels     int64           `json:"peakRssWithChannelsBytes"`
	RSSFloor         int64           `json:"rssFloorBytes"` // the handshake program after its answer
	Channels         int             `json:"channels"`
	BinaryBytes      int64           `json:"binaryBytes"`
	FloorBinaryBytes int64           `json:"floorBinaryBytes"`
}

// variantResult is the cold start of the handshake program with more imports.
type variantResult struct {
	Tag         string  `json:"tag"`
	Imports     string  `json:"imports"`
	ColdStart   dist    `json:"coldStart"`
	Ratio       float64 `json:"ratioToHandshake"`
	BinaryBytes int64   `json:"binaryBytes"`
}

// initCost is one package's init as GODEBUG=inittrace=1 reports it.
type initCost struct {
	Package string  `json:"package"`
	ClockMs float64 `json:"clockMs"`
	Bytes   int64   `json:"bytes"`
	Allocs  int64   `json:"allocs"`
}

var initializeLine = []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1"}}` + "\n")

// coldStart times spawn → initialize answered, spawns times, for the sidecar or the
// handshake program alike.
func coldStart(path string, args []string, spawns int) ([]time.Duration, error) {
	var samples []time.Duration
	for i := range spawns {
		d, err := spawnOnce(path, args, nil, os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("cold start %d of %s: %w", i, path, err)
		}
		samples = append(samples, d)
	}
	return samples, nil
}

// spawnOnce starts path, sends initialize, and returns the time until the answer was read;
// it returns once the child has exited (stdin closed), so stderr is complete.
func spawnOnce(path string, args, env []string, stderr io.Writer) (time.Duration, error) {
	cmd := exec.Command(path, args...)
	cmd.Stderr = stderr
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
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

var initLine = regexp.MustCompile(`^init (\S+) @([0-9.]+) ms, ([0-9.]+) ms clock, ([0-9]+) bytes, ([0-9]+) allocs`)

// initTrace spawns path spawns times with GODEBUG=inittrace=1 and returns each package's
// median init, most expensive first, the median time the last init ended (ms after the
// runtime started) and the median sum of init clock.
func initTrace(path string, args []string, spawns int) (costs []initCost, doneMs, clockMs float64, err error) {
	clock := map[string][]float64{}
	bytesOf := map[string]int64{}
	allocsOf := map[string]int64{}
	var dones, sums []float64
	for i := range spawns {
		var stderr bytes.Buffer
		if _, err := spawnOnce(path, args, []string{"GODEBUG=inittrace=1"}, &stderr); err != nil {
			return nil, 0, 0, fmt.Errorf("init trace %d of %s: %w", i, path, err)
		}
		var done, sum float64
		for l := range strings.SplitSeq(stderr.String(), "\n") {
			m := initLine.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			at, _ := strconv.ParseFloat(m[2], 64)
			c, _ := strconv.ParseFloat(m[3], 64)
			clock[m[1]] = append(clock[m[1]], c)
			bytesOf[m[1]], _ = strconv.ParseInt(m[4], 10, 64)
			allocsOf[m[1]], _ = strconv.ParseInt(m[5], 10, 64)
			done = max(done, at+c)
			sum += c
		}
		dones, sums = append(dones, done), append(sums, sum)
	}
	for pkg, cs := range clock {
		costs = append(costs, initCost{Package: pkg, ClockMs: median(cs), Bytes: bytesOf[pkg], Allocs: allocsOf[pkg]})
	}
	slices.SortFunc(costs, func(a, b initCost) int {
		if a.ClockMs != b.ClockMs {
			if a.ClockMs > b.ClockMs {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Package, b.Package)
	})
	return costs, median(dones), median(sums), nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// handshakeRSS is the resident memory of a program right after it answered initialize.
func handshakeRSS(path string) (int64, error) {
	cmd := exec.Command(path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	if _, err := stdin.Write(initializeLine); err != nil {
		return 0, err
	}
	if _, err := bufio.NewReader(stdout).ReadBytes('\n'); err != nil {
		return 0, fmt.Errorf("the handshake program did not answer: %w", err)
	}
	return procStatus(cmd.Process.Pid, "VmRSS")
}

// memory measures RSS once initialized, then with channels open (source host, 1 KiB
// snapshot, every channel applied once more after opening, every ack read: a round trip
// written after them has been answered).
func memory(bin string, channels int) (idle, open, peak int64, err error) {
	h, err := startSidecar(bin, nil, channels)
	if err != nil {
		return 0, 0, 0, err
	}
	defer closeHost(h, &err)
	if err := h.initialize(setupTimeout); err != nil {
		return 0, 0, 0, err
	}
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
	if _, err := h.callAfterBulk("channel.status", []byte(`{"channel":"`+channelName(0)+`"}`), roundTimeout); err != nil {
		return 0, 0, 0, err
	}
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
		return 0, fmt.Errorf("reading a child's memory (Linux /proc only): %w", err)
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
