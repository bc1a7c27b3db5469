package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// --- DESIGN §4: K invalidations in a burst cause, for source host, at most 2
// getSnapshot per topic, whatever K and the channel count.

// sharedRig is N channels of one topic over one SharedProvider whose upstream is the
// gated fake provider of env. Appliers acknowledge at once.
type sharedRig struct {
	env      *fakeEnv
	shared   *SharedProvider
	channels []*Channel

	mu      sync.Mutex
	applied map[int][]Revision
}

func newSharedRig(t *testing.T, n int) *sharedRig {
	env := newFakeEnv(t)
	rig := &sharedRig{env: env, shared: NewSharedProvider(env, 0), applied: map[int][]Revision{}}
	t.Cleanup(func() {
		for _, c := range rig.channels {
			c.Stop()
		}
		rig.shared.Close()
	})
	for i := range n {
		c, err := NewChannel(Config{
			Topic:    testTopic,
			Channel:  fmt.Sprintf("w%d", i),
			Provider: rig.shared,
			Applier: ApplierFunc(func(_ context.Context, s Snapshot) error {
				rig.mu.Lock()
				rig.applied[i] = append(rig.applied[i], s.Revision)
				rig.mu.Unlock()
				return nil
			}),
			OnError: env.onError,
		})
		require.NoError(t, err)
		rig.channels = append(rig.channels, c)
		done := startAsync(c)
		call := env.expectFetch() // Start asks for a fresh snapshot: never from the cache
		require.True(t, call.req.Fresh)
		env.answer(call, snap("1"))
		require.NoError(t, receive(t, done, "Start to return"))
	}
	return rig
}

// converged waits until every channel applied rev and has nothing left to do.
func (r *sharedRig) converged(t *testing.T, rev Revision) {
	t.Helper()
	eventually(t, fmt.Sprintf("every channel to apply %s and go idle", rev), func() bool {
		for _, c := range r.channels {
			if c.LocalRevision() != rev || busy(c) {
				return false
			}
		}
		return true
	})
}

func TestSharedProviderOneFetchForManyChannels(t *testing.T) {
	for _, tc := range []struct {
		channels, events int
		firstAnswerStale bool
		wantFetches      uint64
	}{
		{channels: 1, events: 1, wantFetches: 1},
		{channels: 10, events: 100, wantFetches: 1},
		{channels: 50, events: 200, wantFetches: 1},
		{channels: 10, events: 100, firstAnswerStale: true, wantFetches: 2},
		{channels: 50, events: 200, firstAnswerStale: true, wantFetches: 2},
	} {
		name := fmt.Sprintf("%d channels × %d events, first answer stale=%v", tc.channels, tc.events, tc.firstAnswerStale)
		t.Run(name, func(t *testing.T) {
			rig := newSharedRig(t, tc.channels)
			env := rig.env
			before := rig.shared.Fetches()
			last := Revision(fmt.Sprint(tc.events + 1))

			for _, c := range rig.channels {
				c.InvalidateRaw(event("2"))
			}
			first := env.expectFetch()
			require.True(t, first.req.Fresh, "upstream fetches are always fresh")
			for _, c := range rig.channels {
				burst(c, 2, tc.events+1)
			}
			if tc.firstAnswerStale {
				env.answer(first, snap("2")) // the source answered before the burst reached it
				env.answer(env.expectFetch(), snap(last))
			} else {
				env.answer(first, snap(last))
			}
			rig.converged(t, last)

			got := rig.shared.Fetches() - before
			require.Equal(t, tc.wantFetches, got, "upstream getSnapshot calls for %d events × %d channels: got %d, want %d", tc.events, tc.channels, got, tc.wantFetches)
			require.LessOrEqual(t, got, uint64(2))
			require.Empty(t, env.fetches, "a pending upstream fetch after convergence")
			require.Empty(t, env.errs, "errors: got some, want none")
			rig.mu.Lock()
			defer rig.mu.Unlock()
			for i := range rig.channels {
				applied := rig.applied[i]
				require.Equal(t, last, applied[len(applied)-1], "channel %d", i)
				require.LessOrEqual(t, len(applied), 3, "channel %d applied %v: want at most start + 2", i, applied)
			}
		})
	}
}

func TestSharedProviderServesCoveredRequestsFromCache(t *testing.T) {
	env := newFakeEnv(t)
	s := NewSharedProvider(env, 0)
	t.Cleanup(s.Close)
	ctx := context.Background()
	get := func(req SnapshotRequest) *asyncCall {
		return goCall(func() error {
			got, err := s.GetSnapshot(ctx, req)
			if err == nil && got.Revision == "" {
				return errors.New("empty revision")
			}
			return err
		})
	}
	first := get(SnapshotRequest{MinRevision: "5"})
	env.answerFetch(snapEpoch("5", "e1"))
	require.NoError(t, first.wait(t, "first GetSnapshot"))

	for _, req := range []SnapshotRequest{{MinRevision: "5"}, {MinRevision: "3"}, {MinRevision: "5", Epoch: "e1"}, {}} {
		got, err := s.GetSnapshot(ctx, req)
		require.NoError(t, err)
		require.Equal(t, Revision("5"), got.Revision, "cached answer for %+v", req)
	}
	require.Equal(t, uint64(1), s.Fetches())

	// Not covered: newer revision, other epoch, fresh. Each needs an upstream fetch.
	for _, tc := range []struct {
		req    SnapshotRequest
		answer Snapshot
	}{
		{SnapshotRequest{MinRevision: "6"}, snapEpoch("6", "e1")},
		{SnapshotRequest{MinRevision: "1", Epoch: "e2"}, snapEpoch("1", "e2")},
		{SnapshotRequest{Fresh: true}, snapEpoch("1", "e2")},
	} {
		call := get(tc.req)
		env.answerFetch(tc.answer)
		require.NoError(t, call.wait(t, fmt.Sprintf("GetSnapshot(%+v)", tc.req)))
	}
	require.Equal(t, uint64(4), s.Fetches())

	s.Forget()
	call := get(SnapshotRequest{MinRevision: "1"})
	env.answerFetch(snap("7"))
	require.NoError(t, call.wait(t, "GetSnapshot after Forget"))
	require.Equal(t, uint64(5), s.Fetches())
}

func TestSharedProviderNeverCachesEmptyOrInvalidSnapshots(t *testing.T) {
	env := newFakeEnv(t)
	s := NewSharedProvider(env, 0)
	t.Cleanup(s.Close)
	for _, answer := range []Snapshot{{Revision: "0"}, {Revision: "007", Data: []byte(`{}`)}} {
		call := goCall(func() error { _, err := s.GetSnapshot(context.Background(), SnapshotRequest{}); return err })
		env.answerFetch(answer)
		require.NoError(t, call.wait(t, "GetSnapshot"))
	}
	call := goCall(func() error { _, err := s.GetSnapshot(context.Background(), SnapshotRequest{}); return err })
	env.answerFetch(snap("1"))
	require.NoError(t, call.wait(t, "GetSnapshot"))
	require.Equal(t, uint64(3), s.Fetches(), "an empty or invalid answer must not be served from the cache")
}

func TestSharedProviderOneWaiterGivingUpDoesNotFailOthers(t *testing.T) {
	env := newFakeEnv(t)
	s := NewSharedProvider(env, 0)
	t.Cleanup(s.Close)
	ctx, cancel := context.WithCancel(context.Background())
	quitter := goCall(func() error { _, err := s.GetSnapshot(ctx, SnapshotRequest{MinRevision: "2"}); return err })
	fetch := env.expectFetch()
	var got Snapshot
	stayer := goCall(func() error {
		var err error
		got, err = s.GetSnapshot(context.Background(), SnapshotRequest{MinRevision: "2"})
		return err
	})
	cancel()
	require.ErrorIs(t, quitter.wait(t, "the cancelled GetSnapshot"), context.Canceled)
	require.NoError(t, fetch.ctx.Err(), "the shared fetch was cancelled by one waiter giving up")
	env.answer(fetch, snap("2"))
	require.NoError(t, stayer.wait(t, "the other GetSnapshot"))
	require.Equal(t, Revision("2"), got.Revision)
	require.Equal(t, uint64(1), s.Fetches())
}

func TestSharedProviderCloseCancelsAndWaits(t *testing.T) {
	env := newFakeEnv(t)
	s := NewSharedProvider(env, 0)
	waiter := goCall(func() error { _, err := s.GetSnapshot(context.Background(), SnapshotRequest{}); return err })
	fetch := env.expectFetch()
	s.Close() // returns only once the upstream call returned
	require.Error(t, fetch.ctx.Err(), "upstream fetch after Close: got a live context, want it cancelled")
	require.Error(t, waiter.wait(t, "GetSnapshot in flight at Close"))
	_, err := s.GetSnapshot(context.Background(), SnapshotRequest{})
	require.ErrorIs(t, err, ErrStopped)
	s.Close()
}

func TestSharedProviderTimeoutBoundsHungUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		s := NewSharedProvider(env, 2*time.Second)
		defer s.Close()
		start := time.Now()
		call := goCall(func() error { _, err := s.GetSnapshot(context.Background(), SnapshotRequest{}); return err })
		env.expectFetch() // never answered
		require.ErrorIs(t, call.wait(t, "GetSnapshot"), context.DeadlineExceeded)
		require.Equal(t, 2*time.Second, time.Since(start))
		call = goCall(func() error { _, err := s.GetSnapshot(context.Background(), SnapshotRequest{}); return err })
		env.answerFetch(snap("1"))
		require.NoError(t, call.wait(t, "GetSnapshot after a timeout"))
	})
}

// A request that saw the provider open and is starting its fetch (GetSnapshot holds s.mu
// from its check of s.ctx to startFetch's wg.Add) must be waited for by Close: that fetch
// may not run on after Close returned. The test plays the request by holding s.mu itself.
// Close used to cancel and wait without the lock, so its wg.Wait could return before the
// request's wg.Add.
func TestSharedProviderCloseWaitsForAFetchBeingStarted(t *testing.T) {
	release := make(chan struct{})
	upstreamCalled := make(chan struct{}, 1)
	upstream := ProviderFunc(func(context.Context, SnapshotRequest) (Snapshot, error) {
		upstreamCalled <- struct{}{}
		<-release // a host that answers whatever the context says
		return snap("1"), nil
	})
	s := NewSharedProvider(upstream, 0)
	s.mu.Lock() // the request, between its check and wg.Add
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	eventually(t, "Close to return or to wait for the provider's lock", func() bool {
		select {
		case <-closed:
			return true
		default:
			return goroutineWaitsIn("sync.Mutex.Lock", "(*SharedProvider).Close")
		}
	})
	select {
	case <-closed:
		s.mu.Unlock()
		t.Fatal("Close returned while a request was starting its fetch: that fetch would run after Close; want Close to wait for it")
	default:
	}
	fetch := s.startFetch()
	s.mu.Unlock()
	receive(t, upstreamCalled, "the upstream fetch")
	select {
	case <-closed:
		t.Fatal("Close returned while its fetch was still calling upstream; want Close to wait for it")
	default:
	}
	close(release)
	receive(t, closed, "Close to return once the fetch ended")
	select {
	case <-fetch.done:
	default:
		t.Fatal("Close returned before the fetch finished")
	}
}

// goroutineWaitsIn reports whether some goroutine is parked for reason (as the runtime
// prints it, e.g. "sync.Mutex.Lock") with fn on its stack.
func goroutineWaitsIn(reason, fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "["+reason) && strings.Contains(g, fn) {
			return true
		}
	}
	return false
}
