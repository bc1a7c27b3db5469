package engine

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// fanoutEnv is channels of one topic subscribed through a Fanout, over a source whose
// snapshot the test sets.
type fanoutEnv struct {
	f        *Fanout
	channels []*Channel

	mu      sync.Mutex
	current Snapshot
	fetches int
}

func newFanoutEnv(t *testing.T, n int, first Snapshot) *fanoutEnv {
	t.Helper()
	e := &fanoutEnv{f: NewFanout(), current: first}
	provider := ProviderFunc(func(context.Context, SnapshotRequest) (Snapshot, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.fetches++
		return e.current, nil
	})
	applier := ApplierFunc(func(context.Context, Snapshot) error { return nil })
	subscriber := fanoutSubscriber{e.f}
	for range n {
		c, err := NewChannel(Config{Topic: testTopic, Provider: provider, Applier: applier, Subscriber: subscriber})
		require.NoError(t, err)
		require.NoError(t, c.Start(t.Context()))
		e.channels = append(e.channels, c)
	}
	t.Cleanup(func() {
		for _, c := range e.channels {
			c.Stop()
		}
	})
	return e
}

type fanoutSubscriber struct{ f *Fanout }

func (s fanoutSubscriber) Subscribe(_ context.Context, sink Sink) (func(), error) {
	s.f.Add(sink)
	return func() { s.f.Remove(sink) }, nil
}

func (e *fanoutEnv) set(s Snapshot) {
	e.mu.Lock()
	e.current = s
	e.mu.Unlock()
}

func (e *fanoutEnv) fetchCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fetches
}

func (e *fanoutEnv) ignored(t *testing.T) []uint64 {
	t.Helper()
	out := make([]uint64, len(e.channels))
	for i, c := range e.channels {
		out[i] = c.Status().Counters.IgnoredEvents
	}
	return out
}

// Stale events are absorbed once for all channels, each channel counting them as ignored,
// and a channel that leaves keeps its count.
func TestFanoutAbsorbsStaleEventsOnceAndCountsThemPerChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newFanoutEnv(t, 3, snapEpoch("5", "e1"))
		synctest.Wait()
		fetches := e.fetchCount()
		for _, ev := range []InvalidationEvent{
			{Topic: testTopic, Revision: "3"},
			{Topic: testTopic, Revision: "5"},
			{Topic: testTopic, Revision: "1", Epoch: "e1"},
			{Topic: testTopic, Revision: "4"},
		} {
			require.Equal(t, 3, e.f.Invalidate(ev))
		}
		synctest.Wait()
		require.Equal(t, []uint64{4, 4, 4}, e.ignored(t))
		require.Equal(t, uint64(3), e.f.absorbed.Load(), "the first event finds the floor, the next three use it")
		require.Equal(t, fetches, e.fetchCount(), "stale events fetch nothing")

		e.channels[0].Stop() // unsubscribes: leaves the Fanout
		require.Equal(t, 2, e.f.Invalidate(InvalidationEvent{Topic: testTopic, Revision: "2"}))
		require.Equal(t, 2, e.f.Invalidate(InvalidationEvent{Topic: testTopic, Revision: "2"}))
		require.Equal(t, []uint64{4, 6, 6}, e.ignored(t))

		// Not stale for anyone: every channel fetches, none counts it as ignored.
		e.set(snapEpoch("6", "e1"))
		require.Equal(t, 2, e.f.Invalidate(InvalidationEvent{Topic: testTopic, Revision: "6"}))
		synctest.Wait()
		require.Equal(t, []uint64{4, 6, 6}, e.ignored(t))
		require.Equal(t, Revision("6"), e.channels[1].LocalRevision())
		require.Equal(t, Revision("6"), e.channels[2].LocalRevision())
	})
}

// The floor is the lowest localRevision: an event above it reaches the channel behind,
// even when the others ignore it.
func TestFanoutEventAboveTheLowestChannelReachesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newFanoutEnv(t, 2, snapEpoch("5", "e1"))
		synctest.Wait()
		e.set(snapEpoch("9", "e1"))
		require.NoError(t, e.channels[1].Refresh(t.Context()))             // channel 1 at 9, channel 0 at 5
		e.f.Invalidate(InvalidationEvent{Topic: testTopic, Revision: "2"}) // finds the floor: 5
		fetches := e.fetchCount()
		e.f.Invalidate(InvalidationEvent{Topic: testTopic, Revision: "7"})
		synctest.Wait()
		require.Equal(t, fetches+1, e.fetchCount(), "channel 0 fetches for 7")
		require.Equal(t, Revision("9"), e.channels[0].LocalRevision())
		require.Equal(t, []uint64{1, 2}, e.ignored(t))
	})
}

// A member's gate that changes outside the Fanout (here a refresh into a new epoch whose
// revisions start over) retires the floor: an event stale under the old one must reach
// the channels now.
func TestFanoutFloorFollowsGateChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newFanoutEnv(t, 2, snapEpoch("100", "e1"))
		synctest.Wait()
		e.f.Invalidate(InvalidationEvent{Topic: testTopic, Revision: "50"}) // floor e1/100
		e.set(snapEpoch("1", "e2"))
		for _, c := range e.channels {
			require.NoError(t, c.Refresh(t.Context()))
			require.Equal(t, Revision("1"), c.LocalRevision())
		}
		fetches := e.fetchCount()
		e.set(snapEpoch("50", "e2"))
		e.f.Invalidate(InvalidationEvent{Topic: testTopic, Revision: "50"})
		synctest.Wait()
		require.Equal(t, fetches+2, e.fetchCount(), "both channels fetch for 50 in e2")
		for _, c := range e.channels {
			require.Equal(t, Revision("50"), c.LocalRevision())
		}
	})
}
