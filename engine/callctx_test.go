package engine

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// A call's context behaves as one from context.WithTimeout(run, timeout) with its cancel
// deferred: it ends at the deadline, when the call returns, or when the run ends, and a
// context kept past its call never comes back to life with a later call.
func TestCallClockContexts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		run, cancelRun := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
		defer cancelRun()
		k := &callClock{timeout: 2 * time.Second}

		// Ends at its deadline with DeadlineExceeded, and says when that is.
		ctx := k.begin(run)
		require.Equal(t, "v", ctx.Value(ctxKey{}), "values come from the run's context")
		deadline, ok := ctx.Deadline()
		require.True(t, ok)
		require.Equal(t, time.Now().Add(2*time.Second), deadline)
		require.NoError(t, ctx.Err())
		<-ctx.Done()
		require.Equal(t, time.Now(), deadline, "ended at its deadline, not before or after")
		require.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
		k.end(ctx)
		require.ErrorIs(t, ctx.Err(), context.DeadlineExceeded, "end after the deadline keeps the cause")

		// Ends with Canceled when the call returns; a later call's timer does not touch it.
		first := k.begin(run)
		time.Sleep(time.Second)
		k.end(first)
		require.ErrorIs(t, first.Err(), context.Canceled)
		second := k.begin(run)
		time.Sleep(1500 * time.Millisecond) // past first's deadline, within second's
		require.NoError(t, second.Err(), "the first call's deadline must not end the second call")
		<-second.Done()
		require.ErrorIs(t, second.Err(), context.DeadlineExceeded)
		require.ErrorIs(t, first.Err(), context.Canceled)
		k.end(second)

		// abort ends the call in flight and every later one until reset.
		inFlight := k.begin(run)
		k.abort()
		require.ErrorIs(t, inFlight.Err(), context.Canceled)
		k.end(inFlight)
		later := k.begin(run)
		require.ErrorIs(t, later.Err(), context.Canceled, "a call after abort starts ended")
		k.end(later)
		k.reset()
		fresh := k.begin(run)
		require.NoError(t, fresh.Err())
		k.end(fresh)

		// The run's own end ends calls begun after it.
		cancelRun()
		gone := k.begin(run)
		require.True(t, errors.Is(gone.Err(), context.Canceled))
		k.end(gone)

		// No deadline without a timeout.
		k2 := &callClock{}
		ctx2 := k2.begin(context.Background())
		_, ok = ctx2.Deadline()
		require.False(t, ok)
		k2.end(ctx2)
		require.ErrorIs(t, ctx2.Err(), context.Canceled)
	})
}

type ctxKey struct{}
