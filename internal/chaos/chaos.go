// Package chaos holds what the two chaos property tests (engine/ in process, e2e/ over
// the real binary) share: how a run is sized and replayed from the environment, weighted
// fault draws, and the summary of counts they print.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Settings size one run: at most Events events or Duration, whichever ends first, with
// every random choice drawn from Seed.
type Settings struct {
	Seed     uint64
	Events   int
	Duration time.Duration
}

// SettingsFromEnv starts from the defaults and applies CHAOS_SEED (replay a run),
// CHAOS_EVENTS (at least minEvents) and CHAOS_DURATION; a bad value fails the test.
func SettingsFromEnv(t testing.TB, events, minEvents int, duration time.Duration) Settings {
	t.Helper()
	s := Settings{Seed: uint64(time.Now().UnixNano()), Events: events, Duration: duration}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "CHAOS_SEED: want a decimal u64")
		s.Seed = seed
	}
	if v := os.Getenv("CHAOS_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "CHAOS_EVENTS: want a number of events")
		require.GreaterOrEqual(t, n, minEvents, "CHAOS_EVENTS")
		s.Events = n
	}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "CHAOS_DURATION: want a duration such as 2m")
		require.Positive(t, d, "CHAOS_DURATION")
		s.Duration = d
	}
	return s
}

// Pick draws one of kinds with the given weights.
func Pick(r *rand.Rand, kinds []string, weights []int) string {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return kinds[i]
		}
		n -= w
	}
	return kinds[len(kinds)-1]
}

// Wait waits d or until ctx ends: the fault being injected is slowness.
func Wait(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// FormatCounts prints counts as "a=1, b=2" in key order, "none" when empty.
func FormatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
