package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// One test per contract of the seed (state-sync-0001-design.md, "Testing strategy") and
// per rule of DESIGN.md §4. docs/lifecycle.md names the test that proves each rule.

// --- Seed contract: late-join safe: start() always fetches the initial snapshot.

func TestLateJoinFetchesInitialSnapshot(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	c.InvalidateRaw(event("41")) // before Start: the window was not there yet
	done := startAsync(c)
	call := env.expectFetch()
	require.True(t, call.req.Fresh, "Start's fetch: got Fresh=false, want a fresh snapshot")
	env.answer(call, snap("42"))
	env.ack(env.expectApply("42"), nil)
	require.NoError(t, receive(t, done, "Start to return"))
	st := c.Status()
	require.Equal(t, StateRunning, st.State)
	require.Equal(t, Revision("42"), st.LocalRevision)
	require.Equal(t, Counters{Refreshes: 1, Applies: 1}, st.Counters)
	env.expectNoFetch(c)
}

// --- DESIGN §4: Start: subscribe, then refresh.

func TestStartSubscribesBeforeFirstFetch(t *testing.T) {
	t.Run("no fetch before Subscribe returned", func(t *testing.T) {
		env := newFakeEnv(t)
		inSubscribe, release := make(chan struct{}), make(chan struct{})
		env.onSubscribe = func(Sink) {
			close(inSubscribe)
			<-release
		}
		c := env.channel(nil)
		done := startAsync(c)
		receive(t, inSubscribe, "Start to call Subscribe")
		env.expectNoFetch(c)
		require.Equal(t, StateStarting, c.Status().State)
		close(release)
		call := env.expectFetch()
		require.True(t, call.req.Fresh)
		env.answer(call, snap("1"))
		env.ack(env.expectApply("1"), nil)
		require.NoError(t, receive(t, done, "Start to return"))
	})
	t.Run("an event delivered during Subscribe is not lost", func(t *testing.T) {
		env := newFakeEnv(t)
		env.onSubscribe = func(sink Sink) { sink.InvalidateRaw(event("7")) }
		c := env.channel(nil)
		done := startAsync(c)
		// The source is at 7. Answer whatever the channel asks until Start returned.
		for started := false; !started; {
			select {
			case call := <-env.fetches:
				env.answer(call, snap("7"))
			case call := <-env.applies:
				env.ack(call, nil)
			case err := <-done:
				require.NoError(t, err)
				started = true
			case <-time.After(waitTimeout):
				t.Fatalf("Start did not return within %v", waitTimeout)
			}
		}
		env.settle(c)
		require.Equal(t, Revision("7"), c.LocalRevision())
		require.LessOrEqual(t, env.fetchTotal(), 2, "fetches: got %d, want at most 2", env.fetchTotal())
		require.Equal(t, []Revision{"7"}, env.appliedRevisions())
	})
}

// --- Seed contract: start failure cleanup: if start() fails, unsubscribe and reset.

func TestStartFailureUnsubscribesAndResets(t *testing.T) {
	// restart checks that the channel is as new: Start works again from revision 0.
	restart := func(t *testing.T, env *fakeEnv, c *Channel) {
		t.Helper()
		require.Equal(t, StateIdle, c.Status().State)
		require.Equal(t, ZeroRevision, c.LocalRevision())
		require.False(t, env.subscribed(), "got a live subscription after a failed Start, want none")
		c.InvalidateRaw(event("9")) // an idle channel listens to nothing
		env.expectNoFetch(c)
		env.mu.Lock()
		env.subscribeErr = nil
		env.mu.Unlock()
		env.started(c, "3")
		require.True(t, env.subscribed())
	}
	t.Run("subscribe fails", func(t *testing.T) {
		env := newFakeEnv(t)
		cause := errors.New("event transport is down")
		env.subscribeErr = cause
		c := env.channel(nil)
		err := c.Start(context.Background())
		var serr *SyncError
		require.True(t, errors.As(err, &serr), "got %v, want a *SyncError", err)
		require.Equal(t, PhaseSubscribe, serr.Phase)
		require.ErrorIs(t, err, cause)
		require.Equal(t, testTopic, serr.Topic)
		env.expectError(PhaseSubscribe)
		require.Zero(t, env.fetchTotal(), "got a fetch after a failed subscribe, want none")
		restart(t, env, c)
	})
	t.Run("first fetch fails", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		done := startAsync(c)
		env.fail(env.expectFetch(), errors.New("host not ready"))
		err := receive(t, done, "Start to return")
		var serr *SyncError
		require.True(t, errors.As(err, &serr), "got %v, want a *SyncError", err)
		require.Equal(t, PhaseGetSnapshot, serr.Phase)
		env.expectError(PhaseGetSnapshot)
		restart(t, env, c)
	})
	t.Run("first apply fails", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		done := startAsync(c)
		env.answerFetch(snap("3"))
		env.ack(env.expectApply("3"), errors.New("window not mounted"))
		err := receive(t, done, "Start to return")
		var serr *SyncError
		require.True(t, errors.As(err, &serr), "got %v, want a *SyncError", err)
		require.Equal(t, PhaseApply, serr.Phase)
		require.Equal(t, Revision("3"), serr.SnapshotRevision)
		env.expectError(PhaseApply)
		restart(t, env, c)
	})
	t.Run("first snapshot is not canonical", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		done := startAsync(c)
		env.answerFetch(snap("03"))
		err := receive(t, done, "Start to return")
		var serr *SyncError
		require.True(t, errors.As(err, &serr), "got %v, want a *SyncError", err)
		require.Equal(t, PhaseProtocol, serr.Phase)
		env.expectError(PhaseProtocol)
		env.expectNoApply(c)
		restart(t, env, c)
	})
	t.Run("the caller's context ends", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Start(ctx) }()
		call := env.expectFetch()
		cancel()
		require.ErrorIs(t, receive(t, done, "Start to return"), context.Canceled)
		require.Error(t, call.ctx.Err(), "the fetch of a failed Start: got a live context, want it cancelled")
		restart(t, env, c)
	})
	t.Run("the caller's context ends while the first apply is in flight", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Start(ctx) }()
		env.answerFetch(snap("3"))
		call := env.expectApply("3")
		cancel()
		require.ErrorIs(t, receive(t, done, "Start to return"), context.Canceled)
		require.Error(t, call.ctx.Err(), "the apply of a failed Start: got a live context, want it cancelled")
		env.expectNoError(c) // the caller gave up: nothing failed
		restart(t, env, c)
	})
	t.Run("retries are used up", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(func(cfg *Config) {
			cfg.Retry = &RetryPolicy{MaxAttempts: 2, Sleep: func(context.Context, time.Duration) error { return nil }}
		})
		done := startAsync(c)
		env.fail(env.expectFetch(), errors.New("down 1"))
		env.fail(env.expectFetch(), errors.New("down 2"))
		err := receive(t, done, "Start to return")
		var serr *SyncError
		require.True(t, errors.As(err, &serr), "got %v, want a *SyncError", err)
		require.Equal(t, 2, serr.Attempt)
		require.False(t, serr.WillRetry)
		require.Equal(t, 1, env.expectError(PhaseGetSnapshot).Attempt)
		require.Equal(t, 2, env.expectError(PhaseGetSnapshot).Attempt)
		restart(t, env, c)
	})
	t.Run("an event that arrived during the failed start is not applied", func(t *testing.T) {
		// The event makes the worker fetch again right after the first fetch failed,
		// while Start is cleaning up; a host that answers that fetch despite the
		// cancellation must not get its snapshot applied to a channel whose Start failed.
		env := newFakeEnv(t)
		env.ignoreCancel = true
		c := env.channel(nil)
		done := startAsync(c)
		first := env.expectFetch()
		c.InvalidateRaw(event("5"))
		env.fail(first, errors.New("host not ready"))
		for returned := false; !returned; {
			select {
			case call := <-env.fetches:
				env.answer(call, snap("5"))
			case call := <-env.applies:
				env.ack(call, nil)
				t.Fatalf("got apply of revision %s during a failed Start, want none", call.snapshot.Revision)
			case err := <-done:
				require.Error(t, err)
				returned = true
			case <-time.After(waitTimeout):
				t.Fatalf("Start did not return within %v", waitTimeout)
			}
		}
		env.expectError(PhaseGetSnapshot)
		env.expectNoError(c)
		require.Empty(t, env.appliedRevisions())
		restart(t, env, c)
	})
}

// --- DESIGN §4: the first snapshot after start is always applied.

func TestFirstSnapshotAfterStartIsAlwaysApplied(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	done := startAsync(c)
	env.answerFetch(Snapshot{Revision: "0", Data: json.RawMessage(`{"defaults":true}`)})
	env.ack(env.expectApply("0"), nil)
	require.NoError(t, receive(t, done, "Start to return"))
	require.Equal(t, ZeroRevision, c.LocalRevision())
	require.Equal(t, []Revision{"0"}, env.appliedRevisions())
}

// --- Seed contract: revision gate: ignore snapshots with revision <= localRevision.

func TestRevisionGateIgnoresOlderSnapshot(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "5")
	for _, rev := range []Revision{"5", "4", "0"} {
		refresh := goRefresh(t, c)
		env.answerFetch(snap(rev))
		require.NoError(t, refresh.wait(t, "Refresh"), "refresh answered with %s", rev)
		env.expectNoApply(c)
		require.Equal(t, Revision("5"), c.LocalRevision(), "after a snapshot of revision %s", rev)
	}
	refresh := goRefresh(t, c)
	env.fetchAndApply("6")
	require.NoError(t, refresh.wait(t, "Refresh"))
	require.Equal(t, Revision("6"), c.LocalRevision())
	env.expectNoError(c)
}

// --- DESIGN §4: localRevision advances only after apply succeeded.

func TestLocalRevisionAdvancesOnlyAfterApplySucceeds(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "1")
	c.InvalidateRaw(event("2"))
	env.answerFetch(snap("2"))
	call := env.expectApply("2")
	require.Equal(t, Revision("1"), c.LocalRevision(), "while apply is in flight")
	env.ack(call, errors.New("window busy"))
	serr := env.expectError(PhaseApply)
	require.Equal(t, Revision("2"), serr.SnapshotRevision)
	require.Equal(t, Revision("1"), serr.LocalRevision)
	require.Equal(t, Revision("1"), c.LocalRevision(), "after a failed apply")
	c.InvalidateRaw(event("2")) // not stale: 2 was never applied
	env.fetchAndApply("2")
	env.settle(c)
	require.Equal(t, Revision("2"), c.LocalRevision())
}

// --- Seed contract: out-of-order events: ignore stale invalidations.

func TestOutOfOrderEventsAreIgnored(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "5")
	for _, rev := range []Revision{"3", "5", "4", "0", "5"} {
		c.InvalidateRaw(event(rev))
	}
	require.Equal(t, uint64(5), c.Status().Counters.IgnoredEvents)
	env.expectNoFetch(c)
	c.Invalidate(InvalidationEvent{Topic: testTopic, Revision: "6"})
	call := env.expectFetch()
	require.Equal(t, Revision("6"), call.req.MinRevision)
	require.False(t, call.req.Fresh)
	env.answer(call, snap("6"))
	env.ack(env.expectApply("6"), nil)
	env.expectNoFetch(c)
	env.expectNoError(c)
}

func TestEventsOfOtherTopicsAreIgnored(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "1")
	c.Invalidate(InvalidationEvent{Topic: "auth-state", Revision: "9"})
	c.InvalidateRaw(json.RawMessage(`{"topic":"auth-state","revision":"9"}`))
	c.InvalidateRaw(json.RawMessage(`{"topic":" app-config","revision":"9"}`)) // topics compare exactly
	env.expectNoFetch(c)
	env.expectNoError(c)
}

func TestShouldRefreshFiltersEvents(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(func(cfg *Config) {
		cfg.ShouldRefresh = func(ev InvalidationEvent) bool {
			if ev.SourceID == "panic" {
				panic("filter bug")
			}
			return ev.SourceID != "self"
		}
	})
	env.started(c, "1")
	c.InvalidateRaw(json.RawMessage(`{"topic":"app-config","revision":"2","sourceId":"self"}`))
	env.expectNoFetch(c)
	c.InvalidateRaw(json.RawMessage(`{"topic":"app-config","revision":"2","sourceId":"panic"}`))
	serr := env.expectError(PhaseProtocol)
	require.ErrorContains(t, serr, "ShouldRefresh panicked")
	require.Equal(t, Revision("2"), serr.EventRevision)
	env.expectNoFetch(c)
	c.InvalidateRaw(json.RawMessage(`{"topic":"app-config","revision":"2","sourceId":"other-window"}`))
	env.fetchAndApply("2")
	env.settle(c)
	require.Equal(t, Revision("2"), c.LocalRevision())
}

// --- Seed contract: coalescing: burst invalidations result in bounded refreshes.

// burst delivers revisions from..to (inclusive) in a scrambled but fixed order.
func burst(c *Channel, from, to int) {
	n := to - from + 1
	for i := range n {
		c.InvalidateRaw(event(Revision(fmt.Sprint(from + (i*7919)%n))))
	}
}

func TestBurstCoalescesToAtMostTwoRefreshes(t *testing.T) {
	const k = 1000
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "1")
	before := c.Status().Counters.Refreshes
	c.InvalidateRaw(event("2"))
	first := env.expectFetch()
	burst(c, 3, k+1)
	env.answer(first, snap("2")) // the source answered before the burst reached it
	env.ack(env.expectApply("2"), nil)
	trailing := env.expectFetch()
	require.Equal(t, Revision(fmt.Sprint(k+1)), trailing.req.MinRevision, "the trailing refresh asks for the newest event")
	env.answer(trailing, snap(Revision(fmt.Sprint(k+1))))
	env.ack(env.expectApply(Revision(fmt.Sprint(k+1))), nil)
	env.expectNoFetch(c)
	got := c.Status().Counters.Refreshes - before
	require.Equal(t, uint64(2), got, "refreshes for a burst of %d events: got %d, want 2", k, got)
}

func TestTrailingRefreshIsSkippedWhenSnapshotCoversBurst(t *testing.T) {
	const k = 1000
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "1")
	before := c.Status().Counters.Refreshes
	c.InvalidateRaw(event("2"))
	first := env.expectFetch()
	burst(c, 3, k+1)
	env.answer(first, snap(Revision(fmt.Sprint(k+1))))
	call := env.expectApply(Revision(fmt.Sprint(k + 1)))
	burst(c, 2, k+1) // stale duplicates while applying: nothing newer than the run asked for
	env.ack(call, nil)
	env.expectNoFetch(c)
	got := c.Status().Counters.Refreshes - before
	require.Equal(t, uint64(1), got, "refreshes for a burst covered by the first snapshot: got %d, want 1", got)
}

// --- DESIGN §4: a snapshot older than an invalidation it was fetched for is reported
// (protocol), not looped on.

func TestSnapshotOlderThanEventIsReportedNotLooped(t *testing.T) {
	t.Run("not newer than local: not applied", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		env.started(c, "5")
		c.InvalidateRaw(event("7"))
		env.answerFetch(snap("5"))
		serr := env.expectError(PhaseProtocol)
		require.Equal(t, Revision("7"), serr.EventRevision)
		require.Equal(t, Revision("5"), serr.SnapshotRevision)
		require.Equal(t, Revision("5"), serr.LocalRevision)
		env.expectNoApply(c)
		env.expectNoFetch(c)
		require.Equal(t, Revision("5"), c.LocalRevision())
	})
	t.Run("newer than local: applied and reported", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		env.started(c, "5")
		c.InvalidateRaw(event("7"))
		env.answerFetch(snap("6"))
		serr := env.expectError(PhaseProtocol)
		require.Equal(t, Revision("7"), serr.EventRevision)
		require.Equal(t, Revision("6"), serr.SnapshotRevision)
		env.ack(env.expectApply("6"), nil)
		env.expectNoFetch(c)
		require.Equal(t, Revision("6"), c.LocalRevision())
	})
}

// --- DESIGN §4: failures are reported, never disable the engine; the next invalidation
// tries again.

func TestFailuresAreReportedAndDoNotDisableEngine(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(func(cfg *Config) { cfg.Channel = "settings" })
	env.started(c, "1")

	cause := errors.New("host busy")
	c.InvalidateRaw(event("2"))
	env.fail(env.expectFetch(), cause)
	serr := env.expectError(PhaseGetSnapshot)
	require.ErrorIs(t, serr, cause)
	require.Equal(t, Revision("2"), serr.EventRevision)
	require.Equal(t, Revision("1"), serr.LocalRevision)
	require.Equal(t, "settings", serr.Channel)
	require.Equal(t, "settings (app-config): getSnapshot: host busy", serr.Error())
	env.expectNoFetch(c)

	c.InvalidateRaw(event("2"))
	env.answerFetch(snap("2"))
	env.ack(env.expectApply("2"), errors.New("window busy"))
	env.expectError(PhaseApply)

	c.InvalidateRaw(event("2"))
	env.answerFetch(Snapshot{Revision: "2.0", Data: json.RawMessage(`{}`)})
	require.ErrorContains(t, env.expectError(PhaseProtocol), "not canonical")

	c.InvalidateRaw(event("2"))
	env.fetchAndApply("2")
	env.settle(c)
	st := c.Status()
	require.Equal(t, StateRunning, st.State)
	require.Equal(t, Revision("2"), st.LocalRevision)
	require.Equal(t, uint64(3), st.Counters.Errors)
	require.Equal(t, uint64(2), st.Counters.Applies)
}

// --- Seed contract: protocol validation: garbage never crashes, is reported as
// phase "protocol" and ignored.

func TestGarbageEventsReportProtocolAndAreIgnored(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "1")
	n := 0
	for _, g := range readEventVectors(t) {
		for _, tc := range g.Cases {
			if tc.Valid {
				continue
			}
			n++
			c.InvalidateRaw(tc.Event)
			serr := env.expectError(PhaseProtocol)
			var ferr *FieldError
			require.True(t, errors.As(serr, &ferr), "%s: got %v, want a *FieldError", tc.Description, serr)
			require.Equal(t, tc.Field, ferr.Field, "%s: field", tc.Description)
			require.JSONEq(t, string(tc.Event), string(serr.SourceEvent), "%s: sourceEvent is the raw payload", tc.Description)
			require.Equal(t, Revision("1"), serr.LocalRevision)
		}
	}
	require.Greater(t, n, 30, "invalid event vectors")
	for _, payload := range []string{"", "{", "\x00\xff", strings.Repeat("[", 100000)} {
		c.InvalidateRaw(json.RawMessage(payload))
		serr := env.expectError(PhaseProtocol)
		require.LessOrEqual(t, len(serr.SourceEvent), 1200, "sourceEvent of a %d-byte payload: got %d bytes, want it bounded", len(payload), len(serr.SourceEvent))
		if len(serr.SourceEvent) > 0 {
			require.True(t, json.Valid(serr.SourceEvent), "sourceEvent %q is not JSON", serr.SourceEvent)
		}
	}
	env.expectNoFetch(c)
	require.Equal(t, Revision("1"), c.LocalRevision())
	require.Equal(t, StateRunning, c.Status().State)
	c.InvalidateRaw(event("2"))
	env.fetchAndApply("2")
}

// --- DESIGN §4: epoch: a changed epoch resets localRevision.

func TestEpochChangeResetsLocalRevision(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	done := startAsync(c)
	env.answerFetch(snapEpoch("10", "boot-a"))
	env.ack(env.expectApply("10"), nil)
	require.NoError(t, receive(t, done, "Start to return"))
	require.Equal(t, "boot-a", c.Status().Epoch)

	c.InvalidateRaw(eventEpoch("3", "boot-a"))
	env.expectNoFetch(c) // stale within its epoch

	c.InvalidateRaw(eventEpoch("1", "boot-b")) // the source restarted
	call := env.expectFetch()
	require.Equal(t, "boot-b", call.req.Epoch)
	env.answer(call, snapEpoch("1", "boot-b"))
	env.ack(env.expectApply("1"), nil)
	env.settle(c)
	st := c.Status()
	require.Equal(t, Revision("1"), st.LocalRevision)
	require.Equal(t, "boot-b", st.Epoch)

	c.InvalidateRaw(eventEpoch("1", "boot-b"))
	env.expectNoFetch(c)

	// A source whose events carry no epoch: a refresh finds the new one.
	refresh := goRefresh(t, c)
	env.answerFetch(snapEpoch("1", "boot-c"))
	env.ack(env.expectApply("1"), nil)
	require.NoError(t, refresh.wait(t, "Refresh"))
	require.Equal(t, "boot-c", c.Status().Epoch)
	env.expectNoError(c)
}

func TestEventsDuringAnEpochChangeAreNotLost(t *testing.T) {
	// Events without an epoch, snapshots with one: the source restarts between them.
	env := newFakeEnv(t)
	c := env.channel(nil)
	done := startAsync(c)
	env.answerFetch(snapEpoch("10", "boot-a"))
	env.ack(env.expectApply("10"), nil)
	require.NoError(t, receive(t, done, "Start to return"))
	c.InvalidateRaw(event("11"))
	env.answerFetch(snapEpoch("11", "boot-a"))
	env.ack(env.expectApply("11"), nil)

	refresh := goRefresh(t, c)
	found := env.expectFetch()
	c.InvalidateRaw(event("12")) // meanwhile: old world or new? The channel cannot tell.
	env.answer(found, snapEpoch("3", "boot-b"))
	env.ack(env.expectApply("3"), nil)
	require.NoError(t, refresh.wait(t, "Refresh"))
	again := env.expectFetch()
	require.True(t, again.req.Fresh, "the look after an epoch change: got Fresh=false, want a fresh fetch")
	require.Empty(t, again.req.MinRevision, "revisions of the old epoch must not be asked for in the new one")
	env.answer(again, snapEpoch("4", "boot-b"))
	env.ack(env.expectApply("4"), nil)
	env.expectNoFetch(c)
	env.expectNoError(c) // in particular no "older than the invalidated revision" for 12
	require.Equal(t, Revision("4"), c.LocalRevision())

	c.InvalidateRaw(event("5")) // later events are judged in the new epoch
	call := env.expectFetch()
	require.Equal(t, Revision("5"), call.req.MinRevision)
	env.answer(call, snapEpoch("5", "boot-b"))
	env.ack(env.expectApply("5"), nil)
	env.expectNoFetch(c)
	env.expectNoError(c)
}

// --- DESIGN §4: resyncIntervalMs refreshes periodically.

func TestResyncRefreshesPeriodically(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(func(cfg *Config) { cfg.ResyncInterval = time.Second })
		env.started(c, "1")
		start := time.Now()
		// No event at all: the source changed and the event was lost.
		call := env.expectFetch()
		require.True(t, call.req.Fresh, "resync fetch: got Fresh=false, want a fresh snapshot")
		require.Equal(t, time.Second, time.Since(start), "first resync after one interval")
		env.answer(call, snap("2"))
		env.ack(env.expectApply("2"), nil)
		env.answerFetch(snap("2")) // the next tick; nothing new
		synctest.Wait()
		require.Equal(t, Revision("2"), c.LocalRevision())
		require.Empty(t, env.applies)
		c.Stop() // stops the resync timer: no goroutine is left (synctest would report a leak)
		require.Empty(t, env.fetches)
	})
}

// --- DESIGN §4: retry/backoff is a policy, off by default.

func TestNoRetryByDefault(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "1")
	c.InvalidateRaw(event("2"))
	env.fail(env.expectFetch(), errors.New("down"))
	serr := env.expectError(PhaseGetSnapshot)
	require.Zero(t, serr.Attempt)
	require.False(t, serr.WillRetry)
	env.expectNoFetch(c)
	require.Equal(t, 2, env.fetchTotal())
}

func TestRetryPolicyBackoffAndReporting(t *testing.T) {
	var slept []time.Duration
	fakeSleep := func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}
	failing := func(failures int, calls *int) SnapshotProvider {
		return ProviderFunc(func(context.Context, SnapshotRequest) (Snapshot, error) {
			*calls++
			if *calls <= failures {
				return Snapshot{}, fmt.Errorf("failure %d", *calls)
			}
			return snap("9"), nil
		})
	}

	t.Run("exponential backoff until success", func(t *testing.T) {
		slept = nil
		var calls int
		var reported []RetryAttempt
		p := WithRetry(failing(3, &calls), RetryPolicy{MaxAttempts: 5, Sleep: fakeSleep, OnRetry: func(a RetryAttempt) { reported = append(reported, a) }})
		got, err := p.GetSnapshot(context.Background(), SnapshotRequest{})
		require.NoError(t, err)
		require.Equal(t, Revision("9"), got.Revision)
		require.Equal(t, 4, calls)
		require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}, slept)
		require.Len(t, reported, 3)
		for i, a := range reported {
			require.Equal(t, i+1, a.Attempt)
			require.True(t, a.WillRetry)
			require.Equal(t, slept[i], a.NextDelay)
			require.EqualError(t, a.Err, fmt.Sprintf("failure %d", i+1))
		}
	})
	t.Run("delays are capped", func(t *testing.T) {
		slept = nil
		var calls int
		p := WithRetry(failing(10, &calls), RetryPolicy{MaxAttempts: 4, InitialDelay: time.Second, Multiplier: 10, MaxDelay: 5 * time.Second, Sleep: fakeSleep})
		_, err := p.GetSnapshot(context.Background(), SnapshotRequest{})
		var rerr *RetryError
		require.True(t, errors.As(err, &rerr), "got %v, want a *RetryError", err)
		require.Equal(t, 4, rerr.Attempts)
		require.EqualError(t, rerr.Err, "failure 4")
		require.ErrorContains(t, err, "gave up after 4 attempts")
		require.Equal(t, []time.Duration{time.Second, 5 * time.Second, 5 * time.Second}, slept)
	})
	t.Run("defaults: 3 attempts from 100ms doubling", func(t *testing.T) {
		slept = nil
		var calls int
		_, err := WithRetry(failing(10, &calls), RetryPolicy{Sleep: fakeSleep}).GetSnapshot(context.Background(), SnapshotRequest{})
		require.Error(t, err)
		require.Equal(t, 3, calls)
		require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, slept)
	})
	t.Run("jitter stays within its fraction", func(t *testing.T) {
		p := RetryPolicy{InitialDelay: time.Second, Jitter: 0.25}.withDefaults()
		for range 1000 {
			d := p.delay(1)
			require.GreaterOrEqual(t, d, 750*time.Millisecond)
			require.LessOrEqual(t, d, 1250*time.Millisecond)
		}
	})
	t.Run("a cancelled context ends the retries", func(t *testing.T) {
		var calls int
		ctx, cancel := context.WithCancel(context.Background())
		p := WithRetry(failing(10, &calls), RetryPolicy{MaxAttempts: 10, Sleep: func(ctx context.Context, _ time.Duration) error {
			cancel()
			return ctx.Err()
		}})
		_, err := p.GetSnapshot(ctx, SnapshotRequest{})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 1, calls)
	})
	t.Run("a stopped provider is not retried", func(t *testing.T) {
		var calls int
		p := WithRetry(ProviderFunc(func(context.Context, SnapshotRequest) (Snapshot, error) {
			calls++
			return Snapshot{}, ErrStopped
		}), RetryPolicy{MaxAttempts: 5, Sleep: fakeSleep})
		_, err := p.GetSnapshot(context.Background(), SnapshotRequest{})
		require.ErrorIs(t, err, ErrStopped)
		require.Equal(t, 1, calls)
	})
	t.Run("the real timer sleeps the delay", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var calls int
			start := time.Now()
			_, err := WithRetry(failing(2, &calls), RetryPolicy{InitialDelay: time.Second}).GetSnapshot(context.Background(), SnapshotRequest{})
			require.NoError(t, err)
			require.Equal(t, 3*time.Second, time.Since(start), "1s then 2s of backoff")
		})
	})
	t.Run("the channel reports every attempt", func(t *testing.T) {
		env := newFakeEnv(t)
		var userSaw []int
		c := env.channel(func(cfg *Config) {
			cfg.Retry = &RetryPolicy{MaxAttempts: 3, Sleep: func(context.Context, time.Duration) error { return nil },
				OnRetry: func(a RetryAttempt) { userSaw = append(userSaw, a.Attempt) }}
		})
		env.started(c, "1")
		c.InvalidateRaw(event("2"))
		for i := range 3 {
			env.fail(env.expectFetch(), fmt.Errorf("down %d", i+1))
		}
		for i, delay := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
			serr := env.expectError(PhaseGetSnapshot)
			require.Equal(t, i+1, serr.Attempt)
			require.True(t, serr.WillRetry)
			require.Equal(t, delay, serr.NextDelay)
			require.Equal(t, testTopic, serr.Topic)
		}
		final := env.expectError(PhaseGetSnapshot)
		require.Equal(t, 3, final.Attempt)
		require.False(t, final.WillRetry)
		var rerr *RetryError
		require.True(t, errors.As(final, &rerr))
		env.expectNoFetch(c)
		require.Equal(t, []int{1, 2}, userSaw)

		c.InvalidateRaw(event("2"))
		env.fail(env.expectFetch(), errors.New("blip"))
		require.Equal(t, 1, env.expectError(PhaseGetSnapshot).Attempt)
		env.fetchAndApply("2")
		env.expectNoError(c)
	})
}

// --- DESIGN §4: timeouts on every call; a host that never answers costs one timeout.

func TestCallTimeoutBoundsHungProvider(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(func(cfg *Config) { cfg.CallTimeout = 2 * time.Second })
		env.started(c, "1")

		c.InvalidateRaw(event("2"))
		env.expectFetch() // never answered
		start := time.Now()
		serr := env.expectError(PhaseGetSnapshot)
		require.ErrorIs(t, serr, context.DeadlineExceeded)
		require.Equal(t, 2*time.Second, time.Since(start))

		c.InvalidateRaw(event("2"))
		env.answerFetch(snap("2"))
		env.expectApply("2") // never acknowledged
		require.ErrorIs(t, env.expectError(PhaseApply), context.DeadlineExceeded)
		require.Equal(t, Revision("1"), c.LocalRevision())

		c.InvalidateRaw(event("3"))
		env.fetchAndApply("3")
		synctest.Wait()
		require.Equal(t, Revision("3"), c.LocalRevision())
	})
}

func TestCallTimeoutFailsStartOnHungProvider(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(func(cfg *Config) { cfg.CallTimeout = 2 * time.Second })
		done := startAsync(c)
		env.expectFetch()
		err := receive(t, done, "Start to return")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		env.expectError(PhaseGetSnapshot)
		require.Equal(t, StateIdle, c.Status().State)
		require.False(t, env.subscribed())
	})
}

// --- OnError may panic without hurting the engine.

func TestOnErrorPanicDoesNotHurtEngine(t *testing.T) {
	env := newFakeEnv(t)
	var logs lockedBuffer
	c := env.channel(func(cfg *Config) {
		cfg.OnError = func(serr *SyncError) {
			env.onError(serr)
			panic("broken error hook")
		}
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	env.started(c, "1")
	c.InvalidateRaw(json.RawMessage(`{"topic":""}`))
	env.expectError(PhaseProtocol)
	c.InvalidateRaw(event("2"))
	env.fail(env.expectFetch(), errors.New("down"))
	env.expectError(PhaseGetSnapshot)
	c.InvalidateRaw(event("2"))
	env.answerFetch(snap("2"))
	env.ack(env.expectApply("2"), errors.New("busy"))
	env.expectError(PhaseApply)
	c.InvalidateRaw(event("3"))
	env.fetchAndApply("3")
	env.settle(c)
	require.Equal(t, Revision("3"), c.LocalRevision())
	require.Equal(t, StateRunning, c.Status().State)
	require.Contains(t, logs.String(), "OnError panicked")
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// --- Seed contract: stop quiescence: no apply after stop.

func TestNoApplyAfterStopWhileSnapshotInFlight(t *testing.T) {
	for _, ignoreCancel := range []bool{false, true} {
		t.Run(fmt.Sprintf("host ignores cancellation=%v", ignoreCancel), func(t *testing.T) {
			env := newFakeEnv(t)
			env.ignoreCancel = ignoreCancel
			c := env.channel(nil)
			env.started(c, "1")
			c.InvalidateRaw(event("2"))
			call := env.expectFetch()
			stop := goCall(func() error { c.Stop(); return nil })
			eventually(t, "Stop to begin", func() bool { return c.Status().State == StateStopped })
			require.Error(t, call.ctx.Err(), "the fetch in flight: got a live context after Stop, want it cancelled")
			env.answer(call, snap("2")) // late, or racing the cancellation
			require.NoError(t, stop.wait(t, "Stop"))
			require.Empty(t, env.applies, "got an apply after Stop, want none")
			require.Equal(t, Revision("1"), c.LocalRevision())
			c.InvalidateRaw(event("3"))
			require.ErrorIs(t, c.Refresh(context.Background()), ErrStopped)
			env.expectNoFetch(c)
			env.expectNoApply(c)
			env.expectNoError(c)
			require.False(t, env.subscribed())
		})
	}
}

func TestNoApplyAfterStopWhileApplyInFlight(t *testing.T) {
	t.Run("host honours cancellation: the apply is cancelled", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		env.started(c, "1")
		c.InvalidateRaw(event("2"))
		env.answerFetch(snap("2"))
		call := env.expectApply("2")
		c.InvalidateRaw(event("3")) // would cause a trailing refresh
		c.Stop()
		require.Error(t, call.ctx.Err(), "the apply in flight: got a live context after Stop, want it cancelled")
		require.Equal(t, Revision("1"), c.LocalRevision())
		c.InvalidateRaw(event("4"))
		env.expectNoFetch(c)
		env.expectNoApply(c)
		env.expectNoError(c)
	})
	t.Run("host answers anyway: Stop waits for the apply", func(t *testing.T) {
		env := newFakeEnv(t)
		env.ignoreCancel = true
		c := env.channel(nil)
		env.started(c, "1")
		c.InvalidateRaw(event("2"))
		env.answerFetch(snap("2"))
		call := env.expectApply("2")
		c.InvalidateRaw(event("3"))
		stop := goCall(func() error { c.Stop(); return nil })
		eventually(t, "Stop to begin", func() bool { return c.Status().State == StateStopped })
		require.False(t, stop.returned(), "Stop returned while an apply was in flight, want it to wait")
		env.ack(call, nil)
		require.NoError(t, stop.wait(t, "Stop"))
		require.Equal(t, Revision("2"), c.LocalRevision(), "the window acknowledged the apply")
		env.expectNoFetch(c)
		env.expectNoApply(c)
	})
}

// --- DESIGN §4: Stop waits for everything the engine started; safe to call twice.

func TestStopIsIdempotentAndWaits(t *testing.T) {
	t.Run("concurrent and repeated Stops all wait", func(t *testing.T) {
		env := newFakeEnv(t)
		env.ignoreCancel = true
		c := env.channel(nil)
		env.started(c, "1")
		c.InvalidateRaw(event("2"))
		call := env.expectFetch()
		stops := []*asyncCall{
			goCall(func() error { c.Stop(); return nil }),
			goCall(func() error { c.Stop(); return nil }),
		}
		eventually(t, "Stop to begin", func() bool { return c.Status().State == StateStopped })
		for _, s := range stops {
			require.False(t, s.returned(), "Stop returned while a fetch was in flight, want it to wait")
		}
		env.answer(call, snap("2"))
		for _, s := range stops {
			require.NoError(t, s.wait(t, "Stop"))
		}
		c.Stop()
		require.Empty(t, env.applies)
		require.Equal(t, StateStopped, c.Status().State)
	})
	t.Run("Stop before Start", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		c.Stop()
		c.Stop()
		require.ErrorIs(t, c.Start(context.Background()), ErrStopped)
		require.ErrorIs(t, c.Refresh(context.Background()), ErrStopped)
		c.InvalidateRaw(event("1"))
		env.expectNoFetch(c)
		require.Zero(t, env.subscribes)
	})
	t.Run("Start and Refresh misuse", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		require.ErrorIs(t, c.Refresh(context.Background()), ErrNotStarted)
		env.started(c, "1")
		require.ErrorIs(t, c.Start(context.Background()), ErrAlreadyStarted)
		require.Equal(t, 1, env.subscribes)
	})
}

func TestStopDuringStartReturnsErrStopped(t *testing.T) {
	t.Run("while the first snapshot is fetched", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		done := startAsync(c)
		env.expectFetch()
		c.Stop()
		require.ErrorIs(t, receive(t, done, "Start to return"), ErrStopped)
		require.False(t, env.subscribed())
		env.expectNoApply(c)
		require.Equal(t, StateStopped, c.Status().State)
	})
	t.Run("while subscribing", func(t *testing.T) {
		env := newFakeEnv(t)
		inSubscribe, release := make(chan struct{}), make(chan struct{})
		env.onSubscribe = func(Sink) {
			close(inSubscribe)
			<-release
		}
		c := env.channel(nil)
		done := startAsync(c)
		receive(t, inSubscribe, "Start to call Subscribe")
		c.Stop()
		close(release)
		require.ErrorIs(t, receive(t, done, "Start to return"), ErrStopped)
		require.False(t, env.subscribed(), "the subscription made while stopping: got live, want unsubscribed")
		env.expectNoFetch(c)
	})
}

// --- An idle channel keeps no goroutine: a worker runs only while a refresh is asked
// for or in flight, and the timers of resync and throttling are runtime timers. (At 1,000
// open channels a sleeping worker per channel was half the sidecar's memory.)

// workers counts the goroutines of this synctest bubble running a channel's worker, once
// every goroutine of the bubble is blocked. Only this bubble's: a worker an earlier test
// left finishing outside it is no business of this one.
func workers(t *testing.T) int {
	t.Helper()
	synctest.Wait()
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	require.Less(t, n, len(buf), "the goroutine dump was cut")
	stacks := bytes.Split(buf[:n], []byte("\n\n"))
	// The dump starts with the calling goroutine, whose header names its bubble:
	// "goroutine 9 [running, synctest bubble 1]:".
	header, _, _ := bytes.Cut(stacks[0], []byte("\n"))
	at := bytes.Index(header, []byte("synctest bubble "))
	require.GreaterOrEqual(t, at, 0, "workers runs inside synctest.Test: %s", header)
	bubble := string(bytes.TrimSuffix(header[at:], []byte(":"))) // "synctest bubble 1]"
	count := 0
	for _, g := range stacks {
		header, _, _ := bytes.Cut(g, []byte("\n"))
		if bytes.Contains(header, []byte(bubble)) && bytes.Contains(g, []byte("engine.(*Channel).work(")) {
			count++
		}
	}
	return count
}

func TestIdleChannelKeepsNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(func(cfg *Config) {
			cfg.ResyncInterval = 5 * time.Second // within the fakes' 10 s wait
			cfg.Throttling = &Throttling{Debounce: time.Second}
		})
		require.Zero(t, workers(t), "before Start")
		done := startAsync(c)
		call := env.expectFetch()
		require.Equal(t, 1, workers(t), "Start's fetch in flight")
		env.answer(call, snap("1"))
		env.ack(env.expectApply("1"), nil)
		require.NoError(t, receive(t, done, "Start to return"))
		require.Zero(t, workers(t), "running, nothing asked")

		c.InvalidateRaw(event("2"))
		require.Zero(t, workers(t), "an event held back by the debounce")
		start := time.Now()
		call = env.expectFetch()
		require.Equal(t, time.Second, time.Since(start), "the debounced refresh after its quiet time")
		require.Equal(t, 1, workers(t), "the debounced refresh in flight")
		env.answer(call, snap("2"))
		env.ack(env.expectApply("2"), nil)
		require.Zero(t, workers(t), "the burst served")

		call = env.expectFetch() // the resync, 5 s after Start
		require.True(t, call.req.Fresh, "resync fetch: got Fresh=false, want a fresh snapshot")
		require.Equal(t, 1, workers(t), "the resync in flight")
		env.answer(call, snap("2"))
		require.Zero(t, workers(t), "the resync served (nothing newer)")
		c.Stop()
		require.Zero(t, workers(t), "stopped")
		require.Equal(t, Counters{Refreshes: 3, Applies: 2}, c.Status().Counters)
	})
}

// --- StartAsync: Start without a goroutine waiting (channel.open at 1,000 channels).

func TestStartAsyncAnswersOnceWithStartsResult(t *testing.T) {
	// done sees the channel as Start's caller would on return.
	type outcome struct {
		err   error
		state State
		local Revision
	}
	startAsyncOf := func(c *Channel) <-chan outcome {
		got := make(chan outcome, 2) // room for a second call, which would fail the test
		c.StartAsync(context.Background(), func(err error) {
			st := c.Status()
			got <- outcome{err, st.State, st.LocalRevision}
		})
		return got
	}
	t.Run("the first snapshot applied", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		got := startAsyncOf(c)
		env.fetchAndApply("4")
		require.Equal(t, outcome{nil, StateRunning, "4"}, receive(t, got, "done"))
		c.Stop()
		require.Empty(t, got, "done called twice")
	})
	t.Run("the first fetch fails", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		got := startAsyncOf(c)
		env.fail(env.expectFetch(), errors.New("host not ready"))
		o := receive(t, got, "done")
		var serr *SyncError
		require.True(t, errors.As(o.err, &serr), "got %v, want a *SyncError", o.err)
		require.Equal(t, PhaseGetSnapshot, serr.Phase)
		require.Equal(t, StateIdle, o.state, "reset before done is called")
		require.False(t, env.subscribed())
		env.started(c, "5") // and Start works again
		c.Stop()
		require.Empty(t, got, "done called twice")
	})
	t.Run("stopped before the first snapshot", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		got := startAsyncOf(c)
		env.expectFetch()
		c.Stop()
		o := receive(t, got, "done")
		require.ErrorIs(t, o.err, ErrStopped)
		require.Equal(t, StateStopped, o.state)
		require.Empty(t, got, "done called twice")
	})
	t.Run("refused at once", func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(nil)
		env.started(c, "1")
		require.ErrorIs(t, receive(t, startAsyncOf(c), "done").err, ErrAlreadyStarted)
	})
}

// --- channel.refresh: returns once a refresh that started after the call finished.

func TestRefreshWaitsForARefreshThatStartedAfterTheCall(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "1")
	c.InvalidateRaw(event("2"))
	inFlight := env.expectFetch()
	refresh := goRefresh(t, c)
	env.answer(inFlight, snap("2"))
	env.ack(env.expectApply("2"), nil)
	own := env.expectFetch()
	require.True(t, own.req.Fresh, "the refresh's fetch: got Fresh=false, want a fresh snapshot")
	require.False(t, refresh.returned(), "Refresh returned on a fetch that began before it, want its own")
	env.answer(own, snap("3"))
	env.ack(env.expectApply("3"), nil)
	require.NoError(t, refresh.wait(t, "Refresh"))
	require.Equal(t, Revision("3"), c.LocalRevision())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Refresh(ctx), context.Canceled)
	env.answerFetch(snap("3")) // the refresh was asked for; it still runs
	env.expectNoApply(c)
}

// --- The embedded store's "no state yet" is not applied.

func TestEmptyStoreSnapshotIsNotApplied(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	done := startAsync(c)
	env.answerFetch(Snapshot{Revision: ZeroRevision})
	require.NoError(t, receive(t, done, "Start to return"))
	env.expectNoApply(c)
	st := c.Status()
	require.Equal(t, StateRunning, st.State)
	require.Equal(t, ZeroRevision, st.LocalRevision)
	require.Zero(t, st.Counters.Applies)

	c.InvalidateRaw(event("1"))
	env.fetchAndApply("1")
	refresh := goRefresh(t, c)
	env.answerFetch(Snapshot{Revision: ZeroRevision})
	require.NoError(t, refresh.wait(t, "Refresh"))
	env.expectNoApply(c)
	require.Equal(t, Revision("1"), c.LocalRevision())
	env.expectNoError(c)
}

func TestNewChannelValidatesConfig(t *testing.T) {
	env := newFakeEnv(t)
	for name, mutate := range map[string]func(*Config){
		"blank topic": func(c *Config) { c.Topic = " \t" },
		"no provider": func(c *Config) { c.Provider = nil },
		"no applier":  func(c *Config) { c.Applier = nil },
	} {
		cfg := env.config()
		mutate(&cfg)
		_, err := NewChannel(cfg)
		require.Error(t, err, name)
	}
	cfg := env.config()
	cfg.Subscriber = nil
	c, err := NewChannel(cfg)
	require.NoError(t, err, "a channel without a subscriber gets events through Invalidate")
	require.Equal(t, testTopic, c.Topic())
	require.Equal(t, StateIdle, c.Status().State)
	require.Equal(t, ZeroRevision, c.LocalRevision())
}

func TestSyncErrorKeepsCauseAndContext(t *testing.T) {
	cause := &FieldError{Field: "revision", Err: errors.New("leading zeros")}
	serr := &SyncError{Phase: PhaseProtocol, Topic: "app-config", Err: cause}
	require.Equal(t, "app-config: protocol: revision: leading zeros", serr.Error())
	var ferr *FieldError
	require.True(t, errors.As(fmt.Errorf("wrapped: %w", serr), &ferr))
	require.Equal(t, "revision", ferr.Field)
	serr.Channel = "w1"
	require.Equal(t, "w1 (app-config): protocol: revision: leading zeros", serr.Error())
}

// --- Failures of any kind, even a panicking provider or applier, are reported and
// never take the engine down.

func TestProviderAndApplierPanicsAreReported(t *testing.T) {
	env := newFakeEnv(t)
	var panicFetch, panicApply bool
	var mu sync.Mutex
	c := env.channel(func(cfg *Config) {
		cfg.Provider = ProviderFunc(func(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
			mu.Lock()
			p := panicFetch
			mu.Unlock()
			if p {
				panic("provider bug")
			}
			return env.GetSnapshot(ctx, req)
		})
		cfg.Applier = ApplierFunc(func(ctx context.Context, s Snapshot) error {
			mu.Lock()
			p := panicApply
			mu.Unlock()
			if p {
				panic("applier bug")
			}
			return env.Apply(ctx, s)
		})
	})
	env.started(c, "1")
	set := func(fetch, apply bool) {
		mu.Lock()
		panicFetch, panicApply = fetch, apply
		mu.Unlock()
	}

	set(true, false)
	c.InvalidateRaw(event("2"))
	serr := env.expectError(PhaseGetSnapshot)
	var perr *PanicError
	require.True(t, errors.As(serr, &perr), "got %v, want a *PanicError", serr)
	require.Equal(t, "provider bug", perr.Value)

	set(false, true)
	c.InvalidateRaw(event("2"))
	env.answerFetch(snap("2"))
	serr = env.expectError(PhaseApply)
	require.True(t, errors.As(serr, &perr), "got %v, want a *PanicError", serr)
	require.Equal(t, Revision("1"), c.LocalRevision())

	set(false, false)
	c.InvalidateRaw(event("2"))
	env.fetchAndApply("2")
	env.settle(c)
	require.Equal(t, Revision("2"), c.LocalRevision())
	require.Equal(t, StateRunning, c.Status().State)
}

// Issue 13: the host author looks for a bad getSnapshot answer under getSnapshot.
func TestMalformedSnapshotAnswerIsAGetSnapshotError(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "1")
	c.InvalidateRaw(event("2"))
	env.fail(env.expectFetch(), &FieldError{Field: "data", Err: errors.New("is missing")})
	serr := env.expectError(PhaseGetSnapshot)
	var ferr *FieldError
	require.True(t, errors.As(serr, &ferr))
	require.Equal(t, "data", ferr.Field)
	require.Equal(t, Revision("2"), serr.EventRevision)
	env.expectNoFetch(c)
}

// Events of two epochs during one refresh (e1/7, then e2/1, then e1/2) must not let the
// last one stand for all: after e1/6 is applied, e1/7 still needs its trailing refresh.
// Found by the reference model; the engine used to keep only the newest event's (epoch,
// revision) and judged e1/7 covered by e1/6.
func TestEventsOfTwoEpochsDuringARefreshKeepTheirTrailingRefresh(t *testing.T) {
	env := newFakeEnv(t)
	c := env.channel(nil)
	env.started(c, "3")
	c.InvalidateRaw(eventEpoch("5", "e1"))
	first := env.expectFetch()
	for _, ev := range [][2]string{{"7", "e1"}, {"1", "e2"}, {"2", "e1"}} {
		c.InvalidateRaw(eventEpoch(Revision(ev[0]), ev[1]))
	}
	env.answer(first, snapEpoch("6", "e1"))
	env.ack(env.expectApply("6"), nil)
	trailing := env.expectFetch()
	require.False(t, trailing.req.MinRevision == "" && !trailing.req.Fresh, "trailing refresh %+v asks for nothing", trailing.req)
}

// checkTransition is what makes Channel.update panic on a bug: each case breaks one
// invariant and must be refused, naming it.
func TestCheckTransitionRefusesBrokenInvariants(t *testing.T) {
	running := chanState{phase: StateRunning, local: "5", epoch: "e1", appliedOnce: true, runs: 3, cancel: func() {}}
	inFlight := running
	inFlight.worker, inFlight.inFlight, inFlight.runs = true, true, 4
	applying := inFlight
	applying.applying = true
	cases := []struct {
		name   string
		before chanState
		change func(s *chanState)
		want   string
	}{
		{"stopped is final", chanState{phase: StateStopped}, func(s *chanState) { s.phase = StateRunning }, "stopped is final"},
		{"a second refresh in flight", inFlight, func(s *chanState) { s.runs++ }, "while one was in flight"},
		{"an apply once stopped", func() chanState { s := inFlight; s.phase = StateStopped; return s }(), func(s *chanState) { s.applying = true }, "apply began in phase stopped"},
		{"an apply counted without one", running, func(s *chanState) { s.counters.Applies++; s.local = "6" }, "applies counted"},
		{"localRevision moved with no apply", running, func(s *chanState) { s.local = "6" }, "with no apply"},
		{"localRevision went back in its epoch", applying, func(s *chanState) { s.applying = false; s.local = "4"; s.counters.Applies++ }, "went back"},
		{"idle with a refresh in flight", inFlight, func(s *chanState) { s.phase = StateIdle }, "idle with a refresh in flight"},
		{"a refresh begun with no worker", running, func(s *chanState) { s.runs++; s.inFlight = true }, "no worker claimed"},
		{"a worker released mid-refresh", inFlight, func(s *chanState) { s.worker = false }, "no worker claimed"},
		{"a worker claimed once stopped", chanState{phase: StateStopped}, func(s *chanState) { s.worker = true }, "claimed in phase stopped"},
		{"a worker claimed once the run ended", chanState{phase: StateStarting}, func(s *chanState) { s.worker = true }, "run ended: true"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := tc.before
			tc.change(&after)
			err := checkTransition(&tc.before, &after)
			require.Error(t, err, "got no error, want one containing %q", tc.want)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	// And the transitions the engine makes pass: begin, gate, apply to a newer revision.
	after := applying
	after.applying, after.local, after.counters.Applies = false, "6", 1
	require.NoError(t, checkTransition(&applying, &after))
	require.NoError(t, checkTransition(&running, &inFlight))
	released := inFlight // finish, then the worker's last begin, which finds nothing to do
	released.inFlight, released.worker = false, false
	require.NoError(t, checkTransition(&inFlight, &released))
	reset := running
	reset.phase, reset.local, reset.epoch, reset.appliedOnce = StateIdle, ZeroRevision, "", false
	require.NoError(t, checkTransition(&running, &reset))
}
