package engine

import (
	"context"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// The throttling tests run in a synctest bubble: time.Sleep advances the fake clock, and
// time.Since measures exactly when the worker's timer let a refresh begin.

func throttled(t Throttling) func(*Config) {
	return func(cfg *Config) { cfg.Throttling = &t }
}

func TestDebounceWaitsForQuietAfterLastEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(throttled(Throttling{Debounce: 300 * time.Millisecond}))
		env.started(c, "1")
		for _, rev := range []Revision{"2", "3", "4"} {
			c.InvalidateRaw(event(rev))
			time.Sleep(100 * time.Millisecond)
			require.Empty(t, env.fetches, "fetch during the burst: want none until 300ms of quiet")
		}
		last := time.Now().Add(-100 * time.Millisecond)
		call := env.expectFetch()
		require.Equal(t, 300*time.Millisecond, time.Since(last), "fetch: got it this long after the last event, want the debounce")
		require.Equal(t, Revision("4"), call.req.MinRevision)
		env.answer(call, snap("4"))
		env.ack(env.expectApply("4"), nil)
		synctest.Wait()
		require.Equal(t, 2, env.fetchTotal(), "fetches: start's and one for the whole burst")
	})
}

func TestDebounceMaxWaitBoundsAnEndlessBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(throttled(Throttling{Debounce: 300 * time.Millisecond, MaxWait: 500 * time.Millisecond}))
		env.started(c, "1")
		first := time.Now()
		c.InvalidateRaw(event("2"))
		// One event every 100ms: the quiet time never comes; MaxWait ends the wait.
		for rev := 3; rev <= 7; rev++ {
			time.Sleep(100 * time.Millisecond)
			if rev < 7 {
				require.Empty(t, env.fetches, "fetch at %v: want none before MaxWait", time.Since(first))
			}
			c.InvalidateRaw(event(Revision(strconv.Itoa(rev))))
		}
		call := env.expectFetch()
		require.Equal(t, 500*time.Millisecond, time.Since(first), "fetch: got it this long after the first event, want MaxWait")
		env.answer(call, snap("7"))
		env.ack(env.expectApply("7"), nil)
		env.expectNoFetch(c)
	})
}

func TestThrottleLeadingThenTrailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(throttled(Throttling{Throttle: time.Second}))
		env.started(c, "1")
		time.Sleep(2 * time.Second) // the window start's refresh opened has closed

		// Leading edge: the first event of a new window refreshes at once.
		leading := time.Now()
		c.InvalidateRaw(event("2"))
		call := env.expectFetch()
		require.Zero(t, time.Since(leading), "leading fetch: want it at once")
		env.answer(call, snap("2"))
		env.ack(env.expectApply("2"), nil)

		// Events inside the window: one trailing refresh when it closes.
		for _, rev := range []Revision{"3", "4", "5"} {
			time.Sleep(100 * time.Millisecond)
			c.InvalidateRaw(event(rev))
		}
		call = env.expectFetch()
		require.Equal(t, time.Second, time.Since(leading), "trailing fetch: want it one throttle after the leading one began")
		require.Equal(t, Revision("5"), call.req.MinRevision)
		env.answer(call, snap("5"))
		env.ack(env.expectApply("5"), nil)
		env.expectNoFetch(c)
		require.Equal(t, 3, env.fetchTotal(), "fetches: start, leading, trailing")
	})
}

func TestThrottleWithoutLeadingWaitsAWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(throttled(Throttling{Throttle: time.Second, NoLeading: true}))
		env.started(c, "1")
		time.Sleep(2 * time.Second)
		first := time.Now()
		c.InvalidateRaw(event("2"))
		time.Sleep(300 * time.Millisecond)
		c.InvalidateRaw(event("3"))
		call := env.expectFetch()
		require.Equal(t, time.Second, time.Since(first), "fetch: want one throttle after the first event")
		require.Equal(t, Revision("3"), call.req.MinRevision)
		env.answer(call, snap("3"))
		env.ack(env.expectApply("3"), nil)
		env.expectNoFetch(c)
	})
}

func TestThrottleWithoutTrailingDropsEventsInsideTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(throttled(Throttling{Throttle: time.Second, NoTrailing: true}))
		env.started(c, "1")
		c.InvalidateRaw(event("2")) // inside the window start's refresh opened
		time.Sleep(3 * time.Second)
		env.expectNoFetch(c)
		require.Equal(t, Revision("1"), c.LocalRevision())

		// The next event after the window refreshes at once and brings the newest state.
		c.InvalidateRaw(event("3"))
		env.fetchAndApply("3")
		// A refresh inside the window is not throttled: it fetches at once.
		done := make(chan error, 1)
		go func() { done <- c.Refresh(context.Background()) }()
		env.answerFetch(snap("3"))
		require.NoError(t, receive(t, done, "Refresh to return"))
		env.expectNoApply(c)
	})
}

func TestRefreshIsNeverThrottledAndServesThePendingBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(throttled(Throttling{Debounce: time.Second, Throttle: 5 * time.Second}))
		env.started(c, "1")
		c.InvalidateRaw(event("2"))
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- c.Refresh(context.Background()) }()
		call := env.expectFetch()
		require.Zero(t, time.Since(start), "refresh: want its fetch at once, not after the debounce")
		env.answer(call, snap("2"))
		env.ack(env.expectApply("2"), nil)
		require.NoError(t, receive(t, done, "Refresh to return"))
		time.Sleep(10 * time.Second) // past every timer the event set
		env.expectNoFetch(c)
		require.Equal(t, 2, env.fetchTotal(), "fetches: start and the refresh, which served the event")
	})
}

func TestStopWithARefreshHeldBackFetchesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(throttled(Throttling{Debounce: time.Second}))
		env.started(c, "1")
		c.InvalidateRaw(event("2"))
		synctest.Wait() // the worker waits on its timer
		c.Stop()        // joins the worker, timer and all (synctest reports a leak otherwise)
		time.Sleep(2 * time.Second)
		require.Empty(t, env.fetches)
		require.Equal(t, 1, env.fetchTotal())
	})
}

// The coalescing contract holds under throttling: a burst while a refresh is in flight
// costs at most one trailing refresh.
func TestThrottledBurstDuringRefreshCostsOneTrailingRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(throttled(Throttling{Throttle: 200 * time.Millisecond}))
		env.started(c, "1")
		time.Sleep(time.Second)
		c.InvalidateRaw(event("2"))
		call := env.expectFetch()
		for rev := 3; rev <= 1000; rev++ {
			c.InvalidateRaw(event(Revision(strconv.Itoa(rev))))
		}
		env.answer(call, snap("2"))
		env.ack(env.expectApply("2"), nil)
		env.fetchAndApply("1000")
		env.expectNoFetch(c)
		require.Equal(t, 3, env.fetchTotal())
	})
}

func TestThrottlingConfigRefusedWhenMeaningless(t *testing.T) {
	for name, th := range map[string]Throttling{
		"negative":          {Debounce: -time.Second},
		"maxWait alone":     {MaxWait: time.Second},
		"maxWait < wait":    {Debounce: time.Second, MaxWait: time.Millisecond},
		"no edge":           {Throttle: time.Second, NoLeading: true, NoTrailing: true},
		"negative throttle": {Throttle: -1},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := newFakeEnv(t).config()
			cfg.Throttling = &th
			_, err := NewChannel(cfg)
			require.ErrorContains(t, err, "Config.Throttling")
		})
	}
}
