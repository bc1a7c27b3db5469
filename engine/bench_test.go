package engine_test

// Microbenchmarks of the engine's hot paths (go test -bench . ./engine). The numbers in
// docs/performance.md come from `go test -run '^$' -bench . -benchmem ./engine ./rpc`.

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/state-sync/state-sync/engine"
)

var (
	benchSinkInt int
	benchSinkRev engine.Revision
	benchSinkErr error
	benchSinkEv  engine.InvalidationEvent
)

func BenchmarkRevisionCompare(b *testing.B) {
	cases := []struct{ name, a, c string }{
		{"equal", "18446744073709551614", "18446744073709551614"},
		{"shorter", "42", "18446744073709551615"},
		{"same-length", "18446744073709551614", "18446744073709551615"},
	}
	for _, tc := range cases {
		a, c := engine.Revision(tc.a), engine.Revision(tc.c)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				benchSinkInt += a.Compare(c)
			}
		})
	}
}

func BenchmarkParseRevision(b *testing.B) {
	cases := []struct{ name, s string }{
		{"small", "42"},
		{"max", "18446744073709551615"},
		{"leading-zero", "007"},
		{"too-large", "18446744073709551616"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				benchSinkRev, benchSinkErr = engine.ParseRevision(tc.s)
			}
		})
	}
}

func BenchmarkRevisionNext(b *testing.B) {
	r := engine.Revision("18446744073709551599")
	for b.Loop() {
		benchSinkRev, benchSinkErr = r.Next()
	}
}

func BenchmarkParseEvent(b *testing.B) {
	cases := []struct{ name, payload string }{
		{"minimal", `{"topic":"app-config","revision":"42"}`},
		{"full", `{"topic":"app-config","revision":"18446744073709551614","epoch":"e-5f3a","sourceId":"window-1","timestampMs":1732521600000}`},
		{"garbage-revision", `{"topic":"app-config","revision":"007"}`},
		{"not-an-object", `[1,2,3]`},
	}
	for _, tc := range cases {
		payload := []byte(tc.payload)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				benchSinkEv, benchSinkErr = engine.ParseEvent(payload)
			}
		})
	}
}

// BenchmarkInvalidateStale is the per-channel cost of an event the revision gate drops
// (a duplicate, a self-echo, the tail of a burst): what every channel of a topic pays for
// every invalidate the host sends.
func BenchmarkInvalidateStale(b *testing.B) {
	env := newBenchEnv(1, 1<<10, false)
	defer env.stop()
	ev := engine.InvalidationEvent{Topic: "bench", Revision: "1"}
	ch := env.channels[0]
	for b.Loop() {
		ch.Invalidate(ev)
	}
}

// BenchmarkInvalidateStaleChannels is one stale invalidation reaching every running
// channel of a topic, the ingest side of the sidecar's fan-out when the windows already
// hold the revision: the cost should be flat per channel from 10 to 1,000 channels.
// "events/s" counts channel-events absorbed per second.
func BenchmarkInvalidateStaleChannels(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			env := newBenchEnv(n, 1<<10, true)
			defer env.stop()
			ev := engine.InvalidationEvent{Topic: "bench", Revision: "1"}
			b.ResetTimer()
			for b.Loop() {
				for _, ch := range env.channels {
					ch.Invalidate(ev)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkInvalidateStaleChannelsParallel is the same from GOMAXPROCS goroutines at
// once (several connections' read loops, or events racing the channels' own updates):
// what a lock per channel per event costs once it is contended.
func BenchmarkInvalidateStaleChannelsParallel(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			env := newBenchEnv(n, 1<<10, true)
			defer env.stop()
			ev := engine.InvalidationEvent{Topic: "bench", Revision: "1"}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					for _, ch := range env.channels {
						ch.Invalidate(ev)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkFanOut is one invalidation reaching N running channels that share one provider
// (source "host" in the sidecar), each fetching through the shared cache and applying:
// the engine's part of the sidecar's fan-out, without the transport.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("channels=%d", n), func(b *testing.B) {
			env := newBenchEnv(n, 1<<10, true)
			defer env.stop()
			b.ResetTimer()
			for b.Loop() {
				env.round()
			}
			b.StopTimer()
			b.ReportMetric(float64(env.fetches.Load())/float64(env.rounds), "fetches/op")
		})
	}
}

// benchEnv is N channels of one topic over one shared provider whose upstream answers at
// once with the current revision; the applier counts applies of the current round.
type benchEnv struct {
	shared   *engine.SharedProvider
	channels []*engine.Channel
	data     json.RawMessage
	rev      atomic.Uint64
	fetches  atomic.Int64
	rounds   int

	mu      sync.Mutex
	want    uint64
	pending int
	done    chan struct{}
}

func newBenchEnv(n, size int, shared bool) *benchEnv {
	env := &benchEnv{data: json.RawMessage(`"` + string(make([]byte, 0, size)) + fmt.Sprintf("%0*d", size-2, 0) + `"`)}
	env.rev.Store(1)
	upstream := engine.ProviderFunc(func(context.Context, engine.SnapshotRequest) (engine.Snapshot, error) {
		env.fetches.Add(1)
		return engine.Snapshot{Revision: engine.Revision(fmt.Sprint(env.rev.Load())), Data: env.data}, nil
	})
	var provider engine.SnapshotProvider = upstream
	if shared {
		env.shared = engine.NewSharedProvider(upstream, 0)
		provider = env.shared
	}
	applier := engine.ApplierFunc(func(_ context.Context, s engine.Snapshot) error {
		env.mu.Lock()
		if env.done != nil && s.Revision == engine.Revision(fmt.Sprint(env.want)) {
			env.pending--
			if env.pending == 0 {
				close(env.done)
				env.done = nil
			}
		}
		env.mu.Unlock()
		return nil
	})
	for i := range n {
		// CallTimeout as the sidecar sets it by default: each call gets a deadline.
		ch, err := engine.NewChannel(engine.Config{Topic: "bench", Channel: fmt.Sprintf("c%04d", i), Provider: provider, Applier: applier, CallTimeout: 10 * time.Second})
		if err != nil {
			panic(err)
		}
		if err := ch.Start(context.Background()); err != nil {
			panic(err)
		}
		env.channels = append(env.channels, ch)
	}
	return env
}

// round bumps the revision, invalidates every channel and waits until all applied it.
func (env *benchEnv) round() {
	rev := env.rev.Add(1)
	done := make(chan struct{})
	env.mu.Lock()
	env.want, env.pending, env.done = rev, len(env.channels), done
	env.mu.Unlock()
	ev := engine.InvalidationEvent{Topic: "bench", Revision: engine.Revision(fmt.Sprint(rev))}
	for _, ch := range env.channels {
		ch.Invalidate(ev)
	}
	<-done
	env.rounds++
}

func (env *benchEnv) stop() {
	for _, ch := range env.channels {
		ch.Stop()
	}
	if env.shared != nil {
		env.shared.Close()
	}
}
