package main

import (
	"fmt"
	"strconv"
	"time"
)

// The floor of a scenario is the same scenario with the sidecar replaced by floorchild
// (bench/testdata/floorchild): the same host code sends the same invalidate, answers the
// same getSnapshot with the same snapshot line, reads N apply requests of the sidecar's
// shape and size and acknowledges each with the same ack, through the same pipes. What is
// left between the two is the sidecar's own work: envelopes, engine, locks, scheduling.

// floorFanout runs fan-out rounds against floorchild with n channels.
func floorFanout(floorBin string, n int, data []byte, b budget) (samples []time.Duration, perRound float64, err error) {
	f, err := startHost(floorBin, []string{strconv.Itoa(n)}, n)
	if err != nil {
		return nil, 0, fmt.Errorf("starting the floor child: %w", err)
	}
	defer closeHost(f, &err)
	f.setSnapshot(1, data)
	return rounds(f, n, data, 1, b, fmt.Sprintf("floor %d×%s", n, fmtBytes(int64(len(data)))))
}

// budget bounds a measured loop in rounds and time: rounds at most, and once maxTime has
// passed, no more than minRounds.
type budget struct {
	warmup    int
	rounds    int
	minRounds int
	maxTime   time.Duration
}
