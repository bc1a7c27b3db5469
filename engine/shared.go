package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// SharedProvider serves every channel of one topic from one upstream provider, so that a
// burst of K invalidations over N channels costs at most two upstream fetches, not N×K.
//
// The contract, as x/sync's singleflight with a cache:
//   - a request whose MinRevision the cached snapshot covers is answered from the cache;
//   - otherwise it joins the fetch in flight, if any, and takes its result when that
//     covers MinRevision;
//   - otherwise it joins (or starts) the next fetch, one that began after the request,
//     and takes whatever that returns, error included. So a request never waits for more
//     than two fetches, and a source that answers older than it announced is reported by
//     the channel, not looped on.
//   - Fresh requests skip the first two steps: start and explicit refresh must see the
//     source as it is after they began.
//
// Fetches run on goroutines the SharedProvider owns, so one channel giving up (closed,
// timed out) does not fail the others waiting on the same fetch. Close cancels them and
// waits.
type SharedProvider struct {
	upstream SnapshotProvider
	timeout  time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	cache    *Snapshot
	inFlight *sharedFetch
	started  uint64 // fetches started so far; a fetch's id is its rank
}

type sharedFetch struct {
	id       uint64
	done     chan struct{}
	snapshot Snapshot
	err      error
}

// NewSharedProvider wraps upstream. timeout bounds each upstream fetch; 0 means none.
func NewSharedProvider(upstream SnapshotProvider, timeout time.Duration) *SharedProvider {
	ctx, cancel := context.WithCancel(context.Background())
	return &SharedProvider{upstream: upstream, timeout: timeout, ctx: ctx, cancel: cancel}
}

// Fetches reports how many upstream fetches have been started.
func (s *SharedProvider) Fetches() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// Forget drops the cache, e.g. when the source announces a new epoch.
func (s *SharedProvider) Forget() {
	s.mu.Lock()
	s.cache = nil
	s.mu.Unlock()
}

// Close cancels fetches in flight and waits for them. Later requests fail with
// ErrStopped. Safe to call twice.
func (s *SharedProvider) Close() {
	// Cancelled under mu: GetSnapshot checks s.ctx and starts its fetch (wg.Add) in one
	// critical section, so a request that saw the provider open has added its fetch to wg
	// before this, and Wait covers it; any later request sees the context ended. Without
	// the lock, Wait could return before such a request's Add.
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	s.wg.Wait()
}

// GetSnapshot implements SnapshotProvider; see the type's doc for the contract.
func (s *SharedProvider) GetSnapshot(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
	s.mu.Lock()
	startedBefore := s.started
	for {
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			return Snapshot{}, ErrStopped
		}
		if !req.Fresh && s.cache != nil && covers(*s.cache, req) {
			snapshot := *s.cache
			s.mu.Unlock()
			return snapshot, nil
		}
		fetch := s.inFlight
		if fetch == nil {
			fetch = s.startFetch()
		}
		s.mu.Unlock()
		select {
		case <-fetch.done:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return Snapshot{}, fmt.Errorf("timed out waiting for the topic's shared snapshot fetch: %w", ctx.Err())
			}
			return Snapshot{}, fmt.Errorf("stopped waiting for the topic's shared snapshot fetch: %w", ctx.Err())
		}
		if fetch.id > startedBefore {
			return fetch.snapshot, fetch.err
		}
		if !req.Fresh && fetch.err == nil && covers(fetch.snapshot, req) {
			return fetch.snapshot, nil
		}
		s.mu.Lock()
	}
}

func covers(snapshot Snapshot, req SnapshotRequest) bool {
	if req.Epoch != "" && snapshot.Epoch != req.Epoch {
		return false
	}
	if req.MinRevision == "" {
		return true
	}
	return snapshot.Revision.Compare(req.MinRevision) >= 0
}

// startFetch must be called with s.mu held, after checking s.ctx: see Close.
func (s *SharedProvider) startFetch() *sharedFetch {
	s.started++
	fetch := &sharedFetch{id: s.started, done: make(chan struct{})}
	s.inFlight = fetch
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := s.ctx, context.CancelFunc(func() {})
		if s.timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, s.timeout)
		}
		snapshot, err := recovered(func() (Snapshot, error) { return s.upstream.GetSnapshot(ctx, SnapshotRequest{Fresh: true}) })
		cancel()
		s.mu.Lock()
		fetch.snapshot, fetch.err = snapshot, err
		s.inFlight = nil
		if err == nil {
			s.remember(snapshot)
		}
		s.mu.Unlock()
		close(fetch.done)
	}()
	return fetch
}

// remember keeps the newest valid snapshot; a new epoch replaces whatever was cached.
// Called with s.mu held.
func (s *SharedProvider) remember(snapshot Snapshot) {
	if _, err := ParseRevision(string(snapshot.Revision)); err != nil || snapshot.Empty() {
		return
	}
	if s.cache == nil || s.cache.Epoch != snapshot.Epoch || snapshot.Revision.Compare(s.cache.Revision) >= 0 {
		s.cache = &snapshot
	}
}
