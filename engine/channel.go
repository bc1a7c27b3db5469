package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one channel: one window's copy of one topic. The caller's Config is
// copied; zero values are meaningful as documented per field.
type Config struct {
	Topic   string // required; see ValidateTopic
	Channel string // name used in error contexts and logs; may be ""

	// Subscriber connects the channel to its events at Start. nil: events come only
	// through the channel's Invalidate methods.
	Subscriber Subscriber
	Provider   SnapshotProvider // required
	Applier    Applier          // required

	// ShouldRefresh filters valid events of this topic; nil accepts all.
	ShouldRefresh func(InvalidationEvent) bool
	// OnError is told of every failure with its context. It may panic or block briefly
	// without hurting the engine; it runs on the engine's goroutines.
	OnError func(*SyncError)
	// Logger receives trace logs (subscribe, refresh, apply, ignore); nil is silent.
	Logger *slog.Logger

	// CallTimeout bounds each provider and applier call; 0 means no bound.
	CallTimeout time.Duration
	// Retry, when set, wraps Provider with WithRetry; nil makes one attempt per refresh.
	Retry *RetryPolicy
	// ResyncInterval, when > 0, refreshes periodically: a safety net for sources whose
	// events can be lost.
	ResyncInterval time.Duration
	// Throttling, when set, spaces the refreshes that events ask for; nil refreshes as
	// soon as an event is accepted. Start, Refresh and the resync tick are never delayed.
	Throttling *Throttling
}

// State is where a channel is in its life.
type State string

const (
	StateIdle     State = "idle"
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateStopped  State = "stopped"
)

// Counters count what a channel did, for status and tests.
type Counters struct {
	Refreshes     uint64 `json:"refreshes"`
	Applies       uint64 `json:"applies"`
	IgnoredEvents uint64 `json:"ignoredEvents"`
	Errors        uint64 `json:"errors"`
}

// Status is a consistent view of a channel.
type Status struct {
	Topic         string
	Channel       string
	State         State
	LocalRevision Revision
	Epoch         string
	Counters      Counters
}

// Channel is the sync engine of one channel.
//
// Its state lives in one chanState, changed only inside update, which checks the
// invariants after every change (the shape of x/tools' jsonrpc2_v2 updateInFlight).
// Refreshes run on a worker goroutine, the only caller of the provider and the applier,
// so at most one refresh is ever in flight. A channel keeps no goroutine while idle: the
// change that asks for work (an event, Start, Refresh, the resync or throttle timer)
// claims the worker in the same update when none is claimed, and the worker releases
// its claim, and exits, in the update that finds nothing left to begin. At 1,000 open
// channels a sleeping worker per channel was half the sidecar's resident memory (its
// stack); a goroutine started per burst costs about what waking a sleeping one did.
//
// Coalescing, as singleflight: an event that arrives while a refresh is in flight sets
// dirty; however many arrive, that causes exactly one trailing refresh, which is skipped
// when the snapshot just applied already covers the newest event.
type Channel struct {
	cfg      Config
	provider SnapshotProvider
	log      *slog.Logger

	// wg counts the workers (at most one at a time, claimed in update, so every Add is
	// ordered before a Stop's Wait by mu); Stop and a failed Start wait for them.
	wg sync.WaitGroup

	// gate is the part of the state that decides what an event does, republished by
	// update after every change: invalidate reads it without the lock, so that an event
	// that changes nothing (stale, or already wanted) costs no lock. An event judged on
	// it takes effect at the moment of the load, which is a moment the state really had.
	gate atomic.Pointer[gateState]
	// ignored is Counters.IgnoredEvents, kept apart so that the lock-free path can count.
	ignored atomic.Uint64
	// calls gives the worker's provider and applier calls their contexts.
	calls callClock

	mu sync.Mutex
	s  chanState // accessed only in update and view, with mu held
	// fanout is the Fanout the channel is a member of, nil when none; fanoutBase is its
	// absorbed count when the channel joined, so the channel's share of the events the
	// Fanout absorbed is the difference. Written by joinFanout and leaveFanout, read by
	// update and Status, all with mu held.
	fanout     *Fanout
	fanoutBase uint64
}

// chanState is everything about a channel that changes. Each field says who writes it;
// update is where, and checkTransition says what may change together.
type chanState struct {
	// phase: Start (idle → starting → running), Stop (→ stopped, for good) and a failed
	// Start's reset (→ idle). Read at every entry point.
	phase State
	// ctx ends at Stop or at a failed Start's reset (endRun); every provider and applier
	// call derives from it. Written by Start, one per start; each refresh takes it when it
	// begins. cancel is nil once the run has ended (or before the first Start): no worker
	// is claimed and no timer re-armed without it.
	ctx    context.Context
	cancel context.CancelFunc
	// resync and due are the timers of Config.ResyncInterval and of Throttling's held
	// back events, made by the first use and reused; stopped by endRun. Their callbacks
	// run on a runtime goroutine and act only through update, so one that fires while
	// Stop runs finds the channel stopped and does nothing.
	resync, due *time.Timer
	// unsubscribe: set by Start once subscribed, taken by Stop or the reset.
	unsubscribe func()

	// local, epoch, appliedOnce: written only when the worker's apply succeeded, and
	// zeroed by a failed Start's reset. appliedOnce turns the revision gate on: the first
	// snapshot after Start is always applied.
	local       Revision
	epoch       string
	appliedOnce bool

	// wanted, wantedEpoch: the newest event accepted since the last refresh began. Raised
	// by invalidate; taken into SnapshotRequest.MinRevision and cleared when a refresh
	// begins, so that an event one refresh served is never asked for again; cleared too
	// when an apply moves to an epoch the events did not name.
	wanted      Revision
	wantedEpoch string
	// mixed: events of more than one epoch arrived since the last refresh began, so
	// wanted alone cannot say whether localRevision covers them all (e4/7, then e5/1,
	// then e4/2 leave wanted at e4/2). Set by invalidate, cleared when a refresh begins.
	mixed bool
	// dirty: set by invalidate; cleared when a refresh begins, or when it ends and
	// local covers wanted. fresh: set by Start, Refresh and the resync tick; cleared
	// when a refresh begins.
	dirty bool
	fresh bool
	// firstEvent, lastEvent: when the first and the last event of the burst that set
	// dirty were accepted; lastBegin: when the last refresh began. Kept only with
	// Config.Throttling, which they are the clock of; written by invalidate and begin.
	firstEvent, lastEvent, lastBegin time.Time

	// worker: a worker goroutine is claimed; it will look at the state at least once
	// more before it exits. Set by claim (only while the run is live), cleared by begin
	// in the update that finds nothing to begin, which is the worker's last.
	worker bool
	// inFlight: a refresh has begun and not finished. applying: that refresh passed the
	// gate and calls, or is about to call, the applier. Only the worker sets or clears
	// them.
	inFlight bool
	applying bool
	runs     uint64 // refreshes begun since NewChannel; waiters are numbered by it
	waiters  []refreshWaiter

	counters Counters // all but IgnoredEvents (Channel.ignored)
}

type refreshWaiter struct {
	after uint64      // satisfied by the first run numbered above this
	done  func(error) // called once, outside the lock
	start bool        // Start's own: its failure ends the channel's work at once
}

// live reports whether the run may do work: started, not stopped, not ended by a failed
// Start.
func (s *chanState) live() bool {
	return (s.phase == StateStarting || s.phase == StateRunning) && s.cancel != nil
}

// endRun ends the run: its context, its calls, its timers. Called inside update.
func (s *chanState) endRun() {
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	if s.resync != nil {
		s.resync.Stop()
	}
	if s.due != nil {
		s.due.Stop()
	}
}

// gateState is what judge needs, copied out of chanState.
type gateState struct {
	live        bool // starting or running
	appliedOnce bool
	local       Revision
	epoch       string
	dirty       bool
	wanted      Revision
	wantedEpoch string
}

func (s *chanState) gate() gateState {
	return gateState{
		live:        s.phase == StateStarting || s.phase == StateRunning,
		appliedOnce: s.appliedOnce,
		local:       s.local,
		epoch:       s.epoch,
		dirty:       s.dirty,
		wanted:      s.wanted,
		wantedEpoch: s.wantedEpoch,
	}
}

// verdict is what an event of the channel's topic does.
type verdict int

const (
	eventDropped verdict = iota // the channel is not live
	eventStale                  // not newer than localRevision in the channel's epoch: counted, ignored
	eventCovered                // a refresh already wanted reaches it: nothing changes
	eventWanted                 // it asks for a refresh
)

// judge is the rule for events, on the lock-free path and under the lock alike.
func (g *gateState) judge(ev InvalidationEvent) verdict {
	if !g.live {
		return eventDropped
	}
	newEpoch := ev.Epoch != "" && ev.Epoch != g.epoch
	if !newEpoch && g.appliedOnce && ev.Revision.Compare(g.local) <= 0 {
		return eventStale
	}
	if g.dirty && ev.Epoch == g.wantedEpoch && !g.raises(ev) {
		return eventCovered
	}
	return eventWanted
}

// raises reports whether ev moves wanted.
func (g *gateState) raises(ev InvalidationEvent) bool {
	newEpoch := ev.Epoch != "" && ev.Epoch != g.epoch
	return g.wanted == "" || newEpoch && ev.Epoch != g.wantedEpoch || ev.Revision.Compare(g.wanted) > 0
}

// update is the one place the channel's state changes. f runs with mu held and must not
// block or call out (hooks, provider, applier, unsubscribe, waiters): what it decides to
// do outside the lock it hands back through variables it captures. Then update checks
// the invariants and republishes the gate.
func (c *Channel) update(f func(s *chanState)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.s
	f(&c.s)
	if err := checkTransition(&before, &c.s); err != nil {
		panic(fmt.Sprintf("engine: channel %q of topic %q broke an invariant, a bug in the engine: %v", c.cfg.Channel, c.cfg.Topic, err))
	}
	// A new gate only when it changed: most updates (counters, waiters) leave it alone.
	if g := c.s.gate(); *c.gate.Load() != g {
		published := new(gateState)
		*published = g
		c.gate.Store(published)
		if c.fanout != nil {
			c.fanout.gen.Add(1) // after the store: see Fanout
		}
	}
}

// joinFanout and leaveFanout keep the channel's share of f's absorbed events; f calls
// them with its lock held.
func (c *Channel) joinFanout(f *Fanout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fanout, c.fanoutBase = f, f.absorbed.Load()
}

func (c *Channel) leaveFanout(f *Fanout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fanout == f {
		c.ignored.Add(f.absorbed.Load() - c.fanoutBase)
		c.fanout = nil
	}
}

// view runs f on the state with mu held, for reading only.
func (c *Channel) view(f func(s *chanState)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.s)
}

// checkTransition states the invariants, as rules on one change from before to after.
func checkTransition(before, after *chanState) error {
	if before.phase == StateStopped && after.phase != StateStopped {
		return fmt.Errorf("phase went from stopped to %s: stopped is final", after.phase)
	}
	if after.phase == StateIdle && (after.inFlight || after.applying) {
		return errors.New("idle with a refresh in flight")
	}
	if after.inFlight && !after.worker {
		return errors.New("a refresh in flight with no worker claimed")
	}
	if after.worker && !before.worker && !after.live() {
		// A worker claimed after Stop or a failed Start would outlive their Wait.
		return fmt.Errorf("a worker was claimed in phase %s (run ended: %v)", after.phase, after.cancel == nil)
	}
	if after.runs != before.runs {
		// At most one refresh in flight: a refresh begins only when none is.
		if after.runs != before.runs+1 || before.inFlight || !after.inFlight {
			return fmt.Errorf("refresh %d began while one was in flight (runs %d → %d)", after.runs, before.runs, after.runs)
		}
	}
	if after.applying && !before.applying {
		// No apply after Stop: the gate lets a snapshot through only on a live channel.
		if after.phase != StateStarting && after.phase != StateRunning || !after.inFlight {
			return fmt.Errorf("an apply began in phase %s (refresh in flight: %v)", after.phase, after.inFlight)
		}
	}
	applied := after.counters.Applies - before.counters.Applies
	if applied > 1 || applied == 1 && !before.applying {
		return fmt.Errorf("%d applies counted, with an apply in progress: %v", applied, before.applying)
	}
	reset := after.phase == StateIdle && after.local == ZeroRevision && !after.appliedOnce
	if (after.local != before.local || after.epoch != before.epoch || after.appliedOnce != before.appliedOnce) && applied == 0 && !reset {
		// localRevision advances only after an apply succeeded.
		return fmt.Errorf("localRevision went %q → %q (epoch %q → %q) with no apply", before.local, after.local, before.epoch, after.epoch)
	}
	if before.appliedOnce && after.appliedOnce && before.epoch == after.epoch && after.local.Compare(before.local) < 0 {
		return fmt.Errorf("localRevision went back %s → %s within epoch %q", before.local, after.local, after.epoch)
	}
	return nil
}

// claim decides, inside update, whether the work asked for needs a worker started: not
// when one is claimed (it looks at the state again before it exits), nor when nothing
// may begin now (ready arms the throttle timer for later). true: the caller starts
// c.work once update returns.
func (c *Channel) claim(s *chanState) bool {
	if s.worker || !c.ready(s) {
		return false
	}
	s.worker = true
	c.wg.Add(1)
	return true
}

// ready reports, inside update, whether a refresh may begin now: the run is live and
// something asked for one. When only events asked, and Throttling holds them back, it
// arms the due timer for when they may begin, or drops them (NoTrailing).
func (c *Channel) ready(s *chanState) bool {
	if !s.live() || !s.dirty && !s.fresh {
		return false
	}
	t := c.cfg.Throttling
	if t == nil || s.fresh {
		return true
	}
	at, keep := t.due(s)
	if !keep {
		// Ready inside a throttle window with no trailing edge: as @statesync/core, the
		// burst is dropped; the next event or refresh fetches the newest state, which
		// covers it.
		s.dirty, s.wanted, s.wantedEpoch, s.mixed = false, "", "", false
		return false
	}
	if wait := time.Until(at); wait > 0 {
		// Reset, not a new timer per call: a burst of events reaches here once per event
		// while its debounce moves. A reset racing a callback in flight costs one early
		// look, which arms the timer again.
		if s.due == nil {
			s.due = time.AfterFunc(wait, c.kick)
		} else {
			s.due.Reset(wait)
		}
		return false
	}
	return true
}

// kick is the due timer's callback: the events Throttling held back may begin.
func (c *Channel) kick() {
	start := false
	c.update(func(s *chanState) { start = c.claim(s) })
	if start {
		go c.work()
	}
}

// resyncTick is the resync timer's callback: a refresh, fresh, every ResyncInterval
// while running. A tick during a refresh asks for the next one, as an event would.
func (c *Channel) resyncTick() {
	start := false
	c.update(func(s *chanState) {
		if !s.live() {
			return // the run ended: the timer stays stopped
		}
		s.resync.Reset(c.cfg.ResyncInterval)
		if s.phase == StateRunning {
			s.fresh = true
			start = c.claim(s)
		}
	})
	if start {
		go c.work()
	}
}

// NewChannel checks cfg and returns an idle channel; Start makes it live.
func NewChannel(cfg Config) (*Channel, error) {
	if _, err := ValidateTopic(cfg.Topic); err != nil {
		return nil, err
	}
	if cfg.Provider == nil {
		return nil, errors.New("engine: Config.Provider is required")
	}
	if cfg.Applier == nil {
		return nil, errors.New("engine: Config.Applier is required")
	}
	if t := cfg.Throttling; t != nil {
		if err := t.check(); err != nil {
			return nil, err
		}
		if *t == (Throttling{}) {
			cfg.Throttling = nil // nothing to space: the unthrottled path, without its clock reads
		} else {
			copied := *t // the caller's, never read again
			cfg.Throttling = &copied
		}
	}
	c := &Channel{cfg: cfg, log: cfg.Logger}
	c.calls.timeout = cfg.CallTimeout
	c.s = chanState{phase: StateIdle, local: ZeroRevision}
	g := c.s.gate()
	c.gate.Store(&g)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("topic", cfg.Topic, "channel", cfg.Channel)
	c.provider = cfg.Provider
	if cfg.Retry != nil {
		policy := *cfg.Retry
		userOnRetry := policy.OnRetry
		policy.OnRetry = func(a RetryAttempt) {
			c.report(&SyncError{Phase: PhaseGetSnapshot, Err: a.Err, Attempt: a.Attempt, WillRetry: true, NextDelay: a.NextDelay})
			if userOnRetry != nil {
				userOnRetry(a)
			}
		}
		// The call timeout bounds each attempt, not the retries together: an attempt
		// that timed out is a failed fetch, retried per policy like any other.
		attempt := cfg.Provider
		if timeout := cfg.CallTimeout; timeout > 0 {
			attempt = ProviderFunc(func(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
				ctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				return cfg.Provider.GetSnapshot(ctx, req)
			})
		}
		c.provider = WithRetry(attempt, policy)
	}
	return c, nil
}

// Start subscribes, then fetches and applies the first snapshot, and returns once that
// is done. On failure it leaves nothing behind: unsubscribed, state reset, and Start may
// be called again. Start after Stop returns ErrStopped. When ctx ends first, the start is
// abandoned as a failed one and Start returns ctx's error.
func (c *Channel) Start(ctx context.Context) error {
	result := make(chan error, 1)
	c.StartAsync(ctx, func(err error) { result <- err })
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
	}
	if c.abandonStart() {
		return ctx.Err()
	}
	return <-result // the start ended meanwhile (done, failed or stopped): that stands
}

// StartAsync is Start without the wait: it subscribes (with ctx), asks for the first
// snapshot and returns; done is called once with what Start would return, when the first
// snapshot is applied, the start fails or Stop ends it. No goroutine waits meanwhile,
// which is the point: a server opening 1,000 channels at once holds no goroutine per
// open. done runs on the caller's goroutine (a start refused or failing before its first
// refresh), on Stop's, or on the channel's worker: it must not block for long, nor call
// Stop or Start of this channel.
func (c *Channel) StartAsync(ctx context.Context, done func(error)) {
	var err error
	c.update(func(s *chanState) {
		switch s.phase {
		case StateStopped:
			err = ErrStopped
			return
		case StateStarting, StateRunning:
			err = ErrAlreadyStarted
			return
		}
		s.phase = StateStarting
		var cancel context.CancelFunc
		s.ctx, cancel = context.WithCancel(context.Background())
		c.calls.reset()
		s.cancel = func() {
			cancel()
			c.calls.abort() // a call in flight ends with the run, as a child context would
		}
		if every := c.cfg.ResyncInterval; every > 0 {
			if s.resync == nil {
				s.resync = time.AfterFunc(every, c.resyncTick)
			} else {
				s.resync.Reset(every)
			}
		}
	})
	if err != nil {
		done(err)
		return
	}

	c.log.Debug("subscribe")
	var unsubscribe func()
	if c.cfg.Subscriber != nil {
		unsubscribe, err = c.cfg.Subscriber.Subscribe(ctx, c)
		if err != nil {
			serr := &SyncError{Phase: PhaseSubscribe, Err: err}
			c.report(serr)
			c.update(func(s *chanState) {
				if s.phase != StateStopped {
					s.endRun()
				}
			})
			c.resetRun(nil, true)
			done(c.fill(serr))
			return
		}
	}

	start := false
	c.update(func(s *chanState) {
		if s.phase == StateStopped { // Stop ran while we were subscribing
			err = ErrStopped
			return
		}
		s.unsubscribe = unsubscribe
		s.waiters = append(s.waiters, refreshWaiter{after: s.runs, done: done, start: true})
		s.fresh = true
		start = c.claim(s)
	})
	if err != nil {
		if unsubscribe != nil {
			unsubscribe()
		}
		done(err)
		return
	}
	if start {
		go c.work()
	}
}

// abandonStart ends a start whose caller stopped waiting, unless it ended already (done,
// failed, or stopped: false). It takes Start's waiter, so that the worker no longer
// completes it, ends the run, and resets the channel to idle.
func (c *Channel) abandonStart() bool {
	var unsubscribe func()
	taken := false
	c.update(func(s *chanState) {
		if s.phase != StateStarting {
			return
		}
		for i, w := range s.waiters {
			if w.start {
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				taken = true
				break
			}
		}
		if taken {
			s.endRun()
			unsubscribe, s.unsubscribe = s.unsubscribe, nil
		}
	})
	if taken {
		c.resetRun(unsubscribe, true)
	}
	return taken
}

// resetRun finishes a failed start whose run endRun has ended: it unsubscribes, waits
// for the workers unless it runs on the worker (whose refresh has then finished, and no
// other can begin in an ended run), and returns the channel to idle.
func (c *Channel) resetRun(unsubscribe func(), waitWorkers bool) {
	if unsubscribe != nil {
		unsubscribe()
	}
	if waitWorkers {
		c.wg.Wait()
	}
	var waiters []refreshWaiter
	c.update(func(s *chanState) {
		if s.phase == StateStopped {
			return // Stop came meanwhile: it stays stopped, and answered the waiters
		}
		waiters, s.waiters = s.waiters, nil
		s.phase = StateIdle
		s.local, s.epoch, s.appliedOnce = ZeroRevision, "", false
		s.wanted, s.wantedEpoch, s.mixed, s.dirty, s.fresh = "", "", false, false, false
	})
	for _, w := range waiters {
		w.done(ErrNotStarted)
	}
}

// Stop unsubscribes, cancels calls in flight and waits for every goroutine the channel
// started. After Stop returns the applier is never called again (a timer that fires
// meanwhile finds the channel stopped and starts nothing). Safe to call twice.
func (c *Channel) Stop() {
	var unsubscribe func()
	var waiters []refreshWaiter
	already := false
	c.update(func(s *chanState) {
		if s.phase == StateStopped {
			already = true
			return
		}
		s.phase = StateStopped
		s.endRun()
		unsubscribe, s.unsubscribe = s.unsubscribe, nil
		waiters, s.waiters = s.waiters, nil
	})
	if already {
		c.wg.Wait()
		return
	}
	for _, w := range waiters {
		w.done(ErrStopped)
	}
	if unsubscribe != nil {
		unsubscribe()
	}
	c.wg.Wait()
	c.log.Debug("stopped")
}

// Refresh fetches a snapshot fresh from the provider and applies it if newer, returning
// once a refresh that started after the call has finished, with that refresh's error.
func (c *Channel) Refresh(ctx context.Context) error {
	var err error
	done := make(chan error, 1)
	start := false
	c.update(func(s *chanState) {
		switch s.phase {
		case StateStopped:
			err = ErrStopped
		case StateIdle:
			err = ErrNotStarted
		default:
			s.waiters = append(s.waiters, refreshWaiter{after: s.runs, done: func(err error) { done <- err }})
			s.fresh = true
			start = c.claim(s)
		}
	})
	if err != nil {
		return err
	}
	if start {
		go c.work()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LocalRevision is the revision of the last snapshot applied since Start.
func (c *Channel) LocalRevision() Revision {
	var local Revision
	c.view(func(s *chanState) { local = s.local })
	return local
}

// Status returns a view of the channel, consistent but for IgnoredEvents, which is
// counted without the lock.
func (c *Channel) Status() Status {
	var st Status
	c.view(func(s *chanState) {
		st = Status{Topic: c.cfg.Topic, Channel: c.cfg.Channel, State: s.phase, LocalRevision: s.local, Epoch: s.epoch, Counters: s.counters}
		st.Counters.IgnoredEvents = c.ignored.Load()
		if c.fanout != nil {
			st.Counters.IgnoredEvents += c.fanout.absorbed.Load() - c.fanoutBase
		}
	})
	return st
}

// Topic is the channel's topic.
func (c *Channel) Topic() string { return c.cfg.Topic }

// InvalidateRaw implements Sink: garbage is reported with phase "protocol" and ignored.
func (c *Channel) InvalidateRaw(payload json.RawMessage) {
	event, err := ParseEvent(payload)
	if err != nil {
		c.report(&SyncError{Phase: PhaseProtocol, Err: err, SourceEvent: boundedEvent(payload)})
		return
	}
	c.invalidate(event, payload)
}

// Invalidate implements Sink for an event that was already validated.
func (c *Channel) Invalidate(event InvalidationEvent) { c.invalidate(event, nil) }

// debugOn reports whether debug logs are on. The hot paths (every event of every channel,
// every refresh) ask first: the arguments of a Debug call are boxed, that is allocated,
// even when the logger discards them.
func (c *Channel) debugOn() bool { return c.log.Enabled(context.Background(), slog.LevelDebug) }

func (c *Channel) invalidate(event InvalidationEvent, payload json.RawMessage) {
	if event.Topic != c.cfg.Topic {
		c.log.Debug("ignore event of another topic", "eventTopic", event.Topic)
		return
	}
	if c.cfg.ShouldRefresh != nil && !c.callShouldRefresh(event, payload) {
		return
	}
	v := c.gate.Load().judge(event) // the fast path: most events of a burst change nothing
	start := false
	if v == eventWanted {
		var now time.Time
		if c.cfg.Throttling != nil {
			now = time.Now()
		}
		c.update(func(s *chanState) {
			g := s.gate()
			if v = g.judge(event); v != eventWanted {
				return
			}
			if s.wanted != "" && event.Epoch != s.wantedEpoch {
				s.mixed = true
			}
			if g.raises(event) {
				s.wanted, s.wantedEpoch = event.Revision, event.Epoch
			}
			// Dirty even when the refresh in flight was asked for this revision already:
			// if it fails, or applies less, this event still needs its trailing refresh;
			// if it covers it, the worker skips the trailing refresh.
			if c.cfg.Throttling != nil {
				if !s.dirty {
					s.firstEvent = now
				}
				// now was read before the lock: a concurrent event may have come later.
				if now.After(s.lastEvent) {
					s.lastEvent = now
				}
			}
			s.dirty = true
			start = c.claim(s)
		})
	}
	switch {
	case start:
		go c.work()
	case v == eventStale:
		c.ignored.Add(1)
		if c.debugOn() {
			c.log.Debug("ignore stale event", "revision", event.Revision, "localRevision", c.gate.Load().local)
		}
	}
}

func (c *Channel) callShouldRefresh(event InvalidationEvent, payload json.RawMessage) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.report(&SyncError{Phase: PhaseProtocol, Err: fmt.Errorf("ShouldRefresh panicked: %v", r), SourceEvent: boundedEvent(payload), EventRevision: event.Revision})
			ok = false
		}
	}()
	return c.cfg.ShouldRefresh(event)
}

// work is a worker: it runs refreshes while any may begin, and exits, releasing its
// claim, in the update that finds none. It is the only goroutine that calls the provider
// and the applier.
func (c *Channel) work() {
	defer c.wg.Done()
	// Bounded by demand: each pass takes what was asked before it began, and the
	// coalescing leaves at most one refresh behind the one in flight.
	for {
		run, ctx, req, ok := c.begin()
		if !ok {
			return
		}
		c.finish(run, c.refreshOnce(ctx, req))
	}
}

// begin takes what was asked for into one refresh, with the run's context, if one may
// begin now (ready); otherwise it releases the worker's claim.
func (c *Channel) begin() (run uint64, ctx context.Context, req SnapshotRequest, ok bool) {
	t := c.cfg.Throttling
	c.update(func(s *chanState) {
		if !c.ready(s) {
			s.worker = false
			return
		}
		if t != nil {
			s.lastBegin = time.Now()
		}
		s.runs++
		s.inFlight = true
		run, ctx, ok = s.runs, s.ctx, true
		req = SnapshotRequest{MinRevision: s.wanted, Epoch: s.wantedEpoch, Fresh: s.fresh}
		s.dirty, s.fresh = false, false
		s.wanted, s.wantedEpoch, s.mixed = "", "", false
		s.counters.Refreshes++
	})
	return run, ctx, req, ok
}

// finish ends refresh run with err: it answers the waiters it satisfies and drops the
// trailing refresh when the snapshot just applied covers every event meanwhile. When it
// was Start's first refresh the channel is running, or, if it failed, its run ends and it
// goes back to idle before Start's waiter hears of it.
func (c *Channel) finish(run uint64, err error) {
	var finished []refreshWaiter
	var unsubscribe func()
	failedStart := false
	c.update(func(s *chanState) {
		s.inFlight, s.applying = false, false
		kept := s.waiters[:0]
		for _, w := range s.waiters {
			if run > w.after {
				finished = append(finished, w)
				switch {
				case w.start && err != nil:
					s.endRun() // Start failed: no further refresh may apply anything
					failedStart = !errors.Is(err, ErrStopped)
				case w.start && s.phase == StateStarting:
					s.phase = StateRunning
				}
			} else {
				kept = append(kept, w)
			}
		}
		s.waiters = kept
		if failedStart {
			unsubscribe, s.unsubscribe = s.unsubscribe, nil
		}
		if s.dirty && !s.mixed && s.appliedOnce && s.wantedEpoch == s.epoch && s.wanted.Compare(s.local) <= 0 {
			s.dirty = false
		}
	})
	if failedStart {
		c.resetRun(unsubscribe, false) // on the worker, whose refresh is over
	}
	for _, w := range finished {
		w.done(err)
	}
}

// refreshOnce is one refresh: fetch, gate, apply.
func (c *Channel) refreshOnce(ctx context.Context, req SnapshotRequest) error {
	if c.debugOn() {
		c.log.Debug("refresh", "minRevision", req.MinRevision, "fresh", req.Fresh)
	}
	snapshot, err := c.fetch(ctx, req)
	if err != nil {
		return err
	}
	if ok, err := c.gateSnapshot(ctx, req, snapshot); !ok {
		return err
	}
	return c.apply(ctx, snapshot)
}

// fetch asks the provider for a snapshot and checks its revision.
func (c *Channel) fetch(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
	var (
		snapshot Snapshot
		err      error
	)
	if c.cfg.Retry != nil {
		// NewChannel gave each attempt its own timeout: the run's context bounds the
		// retries together, and ends them on Stop.
		snapshot, err = recovered(func() (Snapshot, error) { return c.provider.GetSnapshot(ctx, req) })
	} else {
		callCtx := c.calls.begin(ctx)
		snapshot, err = recovered(func() (Snapshot, error) { return c.provider.GetSnapshot(callCtx, req) })
		c.calls.end(callCtx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return Snapshot{}, ErrStopped
		}
		// A malformed answer (a *FieldError from the provider) is a getSnapshot failure
		// too: the host author looks for it under the call that went wrong.
		serr := &SyncError{Phase: PhaseGetSnapshot, Err: err, EventRevision: req.MinRevision}
		var retryErr *RetryError
		if errors.As(err, &retryErr) {
			serr.Attempt = retryErr.Attempts
		}
		return Snapshot{}, c.fail(serr)
	}
	if _, err := ParseRevision(string(snapshot.Revision)); err != nil {
		return Snapshot{}, c.fail(&SyncError{Phase: PhaseProtocol, Err: fmt.Errorf("snapshot %w", err), EventRevision: req.MinRevision})
	}
	return snapshot, nil
}

// gateSnapshot is the revision gate: it lets snapshot through to apply (ok) when the
// channel is live and the snapshot is the first since Start, of a new epoch or newer
// than localRevision. Otherwise it returns the refresh's result: nil for "nothing to
// do", ErrStopped, or the protocol error of a source that served older than it announced.
func (c *Channel) gateSnapshot(ctx context.Context, req SnapshotRequest, snapshot Snapshot) (ok bool, err error) {
	var stopped, older bool
	var local Revision
	c.update(func(s *chanState) {
		if s.phase == StateStopped || ctx.Err() != nil { // stopped, or a failed Start is resetting
			stopped = true
			return
		}
		if snapshot.Empty() {
			return
		}
		newEpoch := snapshot.Epoch != s.epoch
		// The event's revision only means something in the snapshot's epoch: the one it
		// named, or, when it named none, the epoch the channel is in.
		sameEpoch := req.Epoch == snapshot.Epoch || req.Epoch == "" && !newEpoch
		older = req.MinRevision != "" && sameEpoch && snapshot.Revision.Compare(req.MinRevision) < 0
		local = s.local
		if s.appliedOnce && !newEpoch && snapshot.Revision.Compare(s.local) <= 0 {
			return
		}
		s.applying, ok = true, true
	})
	olderErr := func() *SyncError {
		return &SyncError{Phase: PhaseProtocol, Err: fmt.Errorf("snapshot revision %s is older than the invalidated revision %s: the source announced a revision it does not serve", snapshot.Revision, req.MinRevision), EventRevision: req.MinRevision, SnapshotRevision: snapshot.Revision}
	}
	switch {
	case stopped:
		return false, ErrStopped
	case snapshot.Empty():
		c.log.Debug("source has no state yet")
		return false, nil
	case !ok && older:
		return false, c.fail(olderErr())
	case !ok:
		c.log.Debug("snapshot not newer", "revision", snapshot.Revision, "localRevision", local)
		return false, nil
	case older:
		// Newer than what the window has, so it is applied; still, the source did not
		// serve what it announced, and the host should hear of it. Not looped on.
		c.report(olderErr())
	}
	return true, nil
}

// apply hands snapshot to the applier and, if it took it, advances localRevision.
func (c *Channel) apply(ctx context.Context, snapshot Snapshot) error {
	callCtx := c.calls.begin(ctx)
	_, err := recovered(func() (struct{}, error) { return struct{}{}, c.cfg.Applier.Apply(callCtx, snapshot) })
	c.calls.end(callCtx)

	var stopped bool
	c.update(func(s *chanState) {
		s.applying = false
		stopped = s.phase == StateStopped || ctx.Err() != nil
		if err != nil {
			return
		}
		if snapshot.Epoch != s.epoch && s.wantedEpoch != snapshot.Epoch {
			// Revisions announced in the old epoch mean nothing in the new one. Events
			// that arrived meanwhile cannot be judged covered: look once more, fresh.
			s.wanted, s.wantedEpoch = "", ""
			if s.dirty {
				s.fresh = true
			}
		}
		s.local, s.epoch, s.appliedOnce = snapshot.Revision, snapshot.Epoch, true
		s.counters.Applies++
	})
	switch {
	case err == nil:
		if c.debugOn() {
			c.log.Debug("applied", "revision", snapshot.Revision, "epoch", snapshot.Epoch)
		}
		return nil
	case stopped:
		return ErrStopped
	default:
		return c.fail(&SyncError{Phase: PhaseApply, Err: err, SnapshotRevision: snapshot.Revision})
	}
}

// fail reports serr and returns it.
func (c *Channel) fail(serr *SyncError) error {
	c.report(serr)
	return serr
}

// fill completes serr's context from the channel's state.
func (c *Channel) fill(serr *SyncError) *SyncError {
	serr.Topic, serr.Channel = c.cfg.Topic, c.cfg.Channel
	if serr.LocalRevision == "" {
		serr.LocalRevision = c.LocalRevision()
	}
	return serr
}

// report counts, logs and hands serr to OnError; a panicking hook is logged, not fatal.
func (c *Channel) report(serr *SyncError) {
	c.fill(serr)
	c.update(func(s *chanState) { s.counters.Errors++ })
	c.log.Warn("sync error", "phase", serr.Phase, "err", serr.Err, "attempt", serr.Attempt, "willRetry", serr.WillRetry)
	if c.cfg.OnError == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("OnError panicked", "panic", r)
		}
	}()
	c.cfg.OnError(serr)
}

// boundedEvent keeps a garbage payload for the error context, cut to a bounded size so
// that a hostile payload is not echoed whole.
func boundedEvent(payload json.RawMessage) json.RawMessage {
	const limit = 1024
	if len(payload) == 0 {
		return nil
	}
	if len(payload) <= limit && json.Valid(payload) {
		return payload
	}
	cut, _ := json.Marshal(quotePrefix(string(payload)))
	return cut
}
