package engine

import (
	"context"
	"sync"
	"time"
)

// callClock gives a channel's provider and applier calls their contexts. Each call's
// context ends when the call returns, at its deadline (Config.CallTimeout), or when the
// channel's run ends (Stop, a failed Start), as one from context.WithTimeout would. But
// the timer is made once per channel and reset per call, and no call registers with its
// parent: at 1,000 channels, context.WithTimeout per call was 17% of the sidecar's CPU
// (creating it, and its cancel taking the run context's lock to unregister) and a third
// of its allocated bytes.
//
// Calls come from the channel's one worker, one at a time, so there is at most one
// current call.
type callClock struct {
	timeout time.Duration // 0: no deadline

	mu sync.Mutex
	// current is the call in progress; nil between calls. Written by begin, end and
	// expire, under mu.
	current *callCtx
	// aborted: the run ended; every call from now on starts ended. Set by abort, cleared
	// by reset (Start, before the worker exists), under mu.
	aborted bool
	// timer fires expire; made by the first timed call. armed: it is set to fire. A call
	// that finds it armed leaves it alone (calls are short, and a timer reset per call
	// was 7% of the sidecar's CPU at 1,000 channels); expire, finding the current call's
	// deadline still ahead, sets it again for the rest, and leaves it unarmed when no
	// call is in progress, so an idle channel's timer sleeps. Both under mu.
	timer *time.Timer
	armed bool
}

// callCtx is one call's context. done is closed once, by callClock.endLocked, after err
// is written; Err reads err only after seeing done closed.
type callCtx struct {
	parent   context.Context // the run's: Value asks it
	deadline time.Time       // zero: none
	done     chan struct{}
	err      error
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }
func (c *callCtx) Done() <-chan struct{}       { return c.done }
func (c *callCtx) Value(key any) any           { return c.parent.Value(key) }
func (c *callCtx) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// begin returns the context of a call made on behalf of run; end ends it once the call
// has returned.
func (k *callClock) begin(run context.Context) *callCtx {
	c := &callCtx{parent: run, done: make(chan struct{})}
	if k.timeout > 0 {
		c.deadline = time.Now().Add(k.timeout)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := run.Err(); err != nil || k.aborted {
		if err == nil {
			err = context.Canceled
		}
		c.err = err
		close(c.done)
		return c
	}
	k.current = c
	if k.timeout > 0 && !k.armed {
		if k.timer == nil {
			k.timer = time.AfterFunc(k.timeout, k.expire)
		} else {
			k.timer.Reset(k.timeout)
		}
		k.armed = true
	}
	return c
}

// end ends c with context.Canceled, unless it has ended already.
func (k *callClock) end(c *callCtx) {
	k.mu.Lock()
	k.endLocked(c, context.Canceled)
	k.mu.Unlock()
}

// endLocked ends c with err unless it has ended already. Called with mu held.
func (k *callClock) endLocked(c *callCtx, err error) {
	if k.current != c {
		return
	}
	k.current = nil
	c.err = err
	close(c.done)
}

// expire ends the current call if its deadline has passed, and otherwise sets the timer
// for the rest of it.
func (k *callClock) expire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.armed = false
	c := k.current
	if c == nil || k.aborted {
		return
	}
	if rest := time.Until(c.deadline); rest > 0 {
		k.timer.Reset(rest)
		k.armed = true
		return
	}
	k.endLocked(c, context.DeadlineExceeded)
}

// abort ends the current call, and makes every later one start ended, until reset: the
// run it belongs to ended.
func (k *callClock) abort() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.aborted = true
	if c := k.current; c != nil {
		k.endLocked(c, context.Canceled)
	}
	if k.timer != nil {
		k.timer.Stop()
		k.armed = false
	}
}

// reset readies the clock for a new run: no call may be in progress.
func (k *callClock) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.aborted = false
}
