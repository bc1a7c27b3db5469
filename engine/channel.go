package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Config describes one channel: one window's copy of one topic. The caller's Config is
// copied; zero values are meaningful as documented per field.
type Config struct {
	Topic   string // required, non-empty after trimming
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

// Channel is the sync engine of one channel. Its state lives in one struct guarded by mu
// and is changed by the methods below only; the refresh worker is the one goroutine that
// calls the provider and the applier, so at most one refresh is ever in flight.
//
// Coalescing, as singleflight: an event that arrives while a refresh is in flight sets
// dirty; however many arrive, that causes exactly one trailing refresh, which is skipped
// when the snapshot just applied already covers the newest event.
type Channel struct {
	cfg      Config
	provider SnapshotProvider
	log      *slog.Logger

	ctx    context.Context // ends at Stop; every call to provider and applier derives from it
	cancel context.CancelFunc
	wg     sync.WaitGroup // the worker and the resync ticker

	mu          sync.Mutex
	state       State
	local       Revision // advances only after a successful apply
	epoch       string
	appliedOnce bool // since Start; the first snapshot after Start is always applied
	wanted      Revision
	wantedEpoch string
	working     bool   // the worker goroutine is running
	dirty       bool   // an event arrived that the current run may not cover
	fresh       bool   // Start, Refresh or resync asked for a fresh fetch
	runs        uint64 // runs started
	waiters     []refreshWaiter
	unsubscribe func()
	counters    Counters
}

type refreshWaiter struct {
	after uint64 // satisfied by the first run numbered above this
	done  chan error
	start bool // Start's own: its failure ends the channel's work at once
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
	c := &Channel{cfg: cfg, state: StateIdle, local: ZeroRevision, log: cfg.Logger}
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
		c.provider = WithRetry(cfg.Provider, policy)
	}
	return c, nil
}

// Start subscribes, then fetches and applies the first snapshot, and returns once that
// is done. On failure it leaves nothing behind: unsubscribed, state reset, and Start may
// be called again. Start after Stop returns ErrStopped.
func (c *Channel) Start(ctx context.Context) error {
	c.mu.Lock()
	switch c.state {
	case StateStopped:
		c.mu.Unlock()
		return ErrStopped
	case StateStarting, StateRunning:
		c.mu.Unlock()
		return ErrAlreadyStarted
	}
	c.state = StateStarting
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.Unlock()

	c.log.Debug("subscribe")
	var unsubscribe func()
	if c.cfg.Subscriber != nil {
		var err error
		unsubscribe, err = c.cfg.Subscriber.Subscribe(ctx, c)
		if err != nil {
			serr := &SyncError{Phase: PhaseSubscribe, Err: err}
			c.report(serr)
			c.resetAfterFailedStart()
			return c.fill(serr)
		}
	}

	c.mu.Lock()
	if c.state == StateStopped { // Stop ran while we were subscribing
		c.mu.Unlock()
		if unsubscribe != nil {
			unsubscribe()
		}
		return ErrStopped
	}
	c.unsubscribe = unsubscribe
	done := c.requestFreshLocked()
	c.waiters[len(c.waiters)-1].start = true
	c.mu.Unlock()

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		if !errors.Is(err, ErrStopped) {
			c.resetAfterFailedStart()
		}
		return err
	}

	c.mu.Lock()
	if c.state == StateStarting {
		c.state = StateRunning
		// Under mu, so that a concurrent Stop either sees the ticker in wg or keeps it
		// from starting.
		if c.cfg.ResyncInterval > 0 {
			c.wg.Add(1)
			go c.resyncLoop(c.ctx)
		}
	}
	stopped := c.state == StateStopped
	c.mu.Unlock()
	if stopped {
		return ErrStopped
	}
	return nil
}

// resetAfterFailedStart unsubscribes, waits for the worker and returns to idle.
func (c *Channel) resetAfterFailedStart() {
	c.mu.Lock()
	if c.state == StateStopped {
		c.mu.Unlock()
		return
	}
	c.cancel()
	unsubscribe := c.unsubscribe
	c.unsubscribe = nil
	c.mu.Unlock()
	if unsubscribe != nil {
		unsubscribe()
	}
	c.wg.Wait()
	c.mu.Lock()
	waiters := c.waiters
	c.waiters = nil
	c.state = StateIdle
	c.local, c.epoch, c.appliedOnce = ZeroRevision, "", false
	c.wanted, c.wantedEpoch, c.dirty, c.fresh = "", "", false, false
	c.mu.Unlock()
	for _, w := range waiters {
		w.done <- ErrNotStarted
	}
}

// Stop unsubscribes, cancels calls in flight and waits for every goroutine the channel
// started. After Stop returns the applier is never called again. Safe to call twice.
func (c *Channel) Stop() {
	c.mu.Lock()
	if c.state == StateStopped {
		c.mu.Unlock()
		c.wg.Wait()
		return
	}
	c.state = StateStopped
	if c.cancel != nil {
		c.cancel()
	}
	unsubscribe := c.unsubscribe
	c.unsubscribe = nil
	waiters := c.waiters
	c.waiters = nil
	c.mu.Unlock()

	for _, w := range waiters {
		w.done <- ErrStopped
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
	c.mu.Lock()
	switch c.state {
	case StateStopped:
		c.mu.Unlock()
		return ErrStopped
	case StateIdle:
		c.mu.Unlock()
		return ErrNotStarted
	}
	done := c.requestFreshLocked()
	c.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LocalRevision is the revision of the last snapshot applied since Start.
func (c *Channel) LocalRevision() Revision {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local
}

// Status returns a consistent view of the channel.
func (c *Channel) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{Topic: c.cfg.Topic, Channel: c.cfg.Channel, State: c.state, LocalRevision: c.local, Epoch: c.epoch, Counters: c.counters}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == StateStopped || c.state == StateIdle {
		return
	}
	newEpoch := event.Epoch != "" && event.Epoch != c.epoch
	if !newEpoch && c.appliedOnce && event.Revision.Compare(c.local) <= 0 {
		c.counters.IgnoredEvents++
		if c.debugOn() {
			c.log.Debug("ignore stale event", "revision", event.Revision, "localRevision", c.local)
		}
		return
	}
	if c.wanted == "" || newEpoch && event.Epoch != c.wantedEpoch || event.Revision.Compare(c.wanted) > 0 {
		c.wanted, c.wantedEpoch = event.Revision, event.Epoch
	}
	// Dirty even when the run in flight was asked for this revision already: if that run
	// fails, or applies less, this event still needs its trailing refresh; if the run
	// covers it, work skips the trailing refresh.
	c.dirty = true
	c.startWorkerLocked()
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

// requestFreshLocked asks for a refresh that starts after now and returns where its
// result arrives. Called with mu held.
func (c *Channel) requestFreshLocked() <-chan error {
	done := make(chan error, 1)
	c.waiters = append(c.waiters, refreshWaiter{after: c.runs, done: done})
	c.fresh = true
	c.startWorkerLocked()
	return done
}

func (c *Channel) startWorkerLocked() {
	// A cancelled context means Stop or a failed Start is tearing the channel down.
	if c.working || c.state == StateStopped || c.ctx.Err() != nil {
		return
	}
	c.working = true
	c.wg.Add(1)
	go c.work()
}

// work runs refreshes until nothing is asked for. It is the only goroutine that calls
// the provider and the applier.
func (c *Channel) work() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if c.state == StateStopped || c.ctx.Err() != nil || (!c.dirty && !c.fresh) {
			c.working = false
			c.mu.Unlock()
			return
		}
		c.runs++
		run := c.runs
		req := SnapshotRequest{MinRevision: c.wanted, Epoch: c.wantedEpoch, Fresh: c.fresh}
		c.dirty, c.fresh = false, false
		c.counters.Refreshes++
		ctx := c.ctx
		c.mu.Unlock()

		err := c.refreshOnce(ctx, req)

		c.mu.Lock()
		kept := c.waiters[:0]
		var finished []refreshWaiter
		for _, w := range c.waiters {
			if run > w.after {
				finished = append(finished, w)
				if w.start && err != nil {
					c.cancel() // Start failed: no further run may apply anything
				}
			} else {
				kept = append(kept, w)
			}
		}
		c.waiters = kept
		if c.dirty && c.appliedOnce && c.wantedEpoch == c.epoch && c.wanted.Compare(c.local) <= 0 {
			c.dirty = false // the snapshot just applied covers every event that arrived meanwhile
		}
		c.mu.Unlock()
		for _, w := range finished {
			w.done <- err
		}
	}
}

// refreshOnce fetches one snapshot and applies it if the revision gate lets it through.
func (c *Channel) refreshOnce(ctx context.Context, req SnapshotRequest) error {
	if c.debugOn() {
		c.log.Debug("refresh", "minRevision", req.MinRevision, "fresh", req.Fresh)
	}
	callCtx, cancel := c.callContext(ctx)
	snapshot, err := recovered(func() (Snapshot, error) { return c.provider.GetSnapshot(callCtx, req) })
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ErrStopped
		}
		serr := &SyncError{Phase: PhaseGetSnapshot, Err: err, EventRevision: req.MinRevision}
		var fieldErr *FieldError
		if errors.As(err, &fieldErr) {
			serr.Phase = PhaseProtocol // the source answered, but with a malformed snapshot
		}
		var retryErr *RetryError
		if errors.As(err, &retryErr) {
			serr.Attempt = retryErr.Attempts
		}
		return c.fail(serr)
	}
	if _, err := ParseRevision(string(snapshot.Revision)); err != nil {
		return c.fail(&SyncError{Phase: PhaseProtocol, Err: fmt.Errorf("snapshot %w", err), EventRevision: req.MinRevision})
	}

	c.mu.Lock()
	if c.state == StateStopped || ctx.Err() != nil { // stopped, or a failed Start is resetting
		c.mu.Unlock()
		return ErrStopped
	}
	if snapshot.Empty() {
		c.mu.Unlock()
		c.log.Debug("source has no state yet")
		return nil
	}
	newEpoch := snapshot.Epoch != c.epoch
	newer := snapshot.Revision.Compare(c.local) > 0
	// The event's revision only means something in the snapshot's epoch: the one it
	// named, or, when it named none, the epoch the channel is in.
	sameEpoch := req.Epoch == snapshot.Epoch || req.Epoch == "" && !newEpoch
	olderThanEvent := req.MinRevision != "" && sameEpoch && snapshot.Revision.Compare(req.MinRevision) < 0
	olderErr := func() *SyncError {
		return &SyncError{Phase: PhaseProtocol, Err: fmt.Errorf("snapshot revision %s is older than the invalidated revision %s: the source announced a revision it does not serve", snapshot.Revision, req.MinRevision), EventRevision: req.MinRevision, SnapshotRevision: snapshot.Revision}
	}
	if c.appliedOnce && !newEpoch && !newer {
		local := c.local
		c.mu.Unlock()
		if olderThanEvent {
			return c.fail(olderErr())
		}
		c.log.Debug("snapshot not newer", "revision", snapshot.Revision, "localRevision", local)
		return nil
	}
	c.mu.Unlock()
	if olderThanEvent {
		// Newer than what the window has, so it is applied; still, the source did not
		// serve what it announced, and the host should hear of it. Not looped on.
		c.report(olderErr())
	}

	callCtx, cancel = c.callContext(ctx)
	_, err = recovered(func() (struct{}, error) { return struct{}{}, c.cfg.Applier.Apply(callCtx, snapshot) })
	cancel()

	c.mu.Lock()
	stopped := c.state == StateStopped || ctx.Err() != nil
	if err == nil {
		if snapshot.Epoch != c.epoch && c.wantedEpoch != snapshot.Epoch {
			// Revisions announced in the old epoch mean nothing in the new one. Events
			// that arrived meanwhile cannot be judged covered: look once more, fresh.
			c.wanted, c.wantedEpoch = "", ""
			if c.dirty {
				c.fresh = true
			}
		}
		c.local, c.epoch, c.appliedOnce = snapshot.Revision, snapshot.Epoch, true
		c.counters.Applies++
	}
	c.mu.Unlock()
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

func (c *Channel) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.cfg.CallTimeout > 0 {
		return context.WithTimeout(ctx, c.cfg.CallTimeout)
	}
	return context.WithCancel(ctx)
}

func (c *Channel) resyncLoop(ctx context.Context) {
	defer c.wg.Done()
	ticker := time.NewTicker(c.cfg.ResyncInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			c.mu.Lock()
			if c.state == StateRunning {
				c.fresh = true
				c.startWorkerLocked()
			}
			c.mu.Unlock()
		}
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
		c.mu.Lock()
		serr.LocalRevision = c.local
		c.mu.Unlock()
	}
	return serr
}

// report counts, logs and hands serr to OnError; a panicking hook is logged, not fatal.
func (c *Channel) report(serr *SyncError) {
	c.fill(serr)
	c.mu.Lock()
	c.counters.Errors++
	c.mu.Unlock()
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
