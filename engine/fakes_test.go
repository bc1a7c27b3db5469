package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitTimeout bounds every wait in the tests. It is a failure bound, never a way to let
// things settle: tests synchronise on the fakes' gates.
const waitTimeout = 10 * time.Second

const testTopic = "app-config"

// eventually waits until cond holds, failing the test with what it waited for after
// waitTimeout or maxYields checks (in a synctest bubble the clock stands still while it
// spins). It yields between checks; it never sleeps.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	const maxYields = 1 << 26
	deadline := time.Now().Add(waitTimeout)
	for n := 0; !cond(); n++ {
		if time.Now().After(deadline) || n >= maxYields {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		runtime.Gosched()
	}
}

// receive waits for one value from ch, failing with what after waitTimeout.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("got nothing within %v, want %s", waitTimeout, what)
		panic("unreachable")
	}
}

// fetchCall is one pending GetSnapshot call of the fake provider.
type fetchCall struct {
	ctx   context.Context
	req   SnapshotRequest
	reply chan fetchReply
	done  bool // guarded by fakeEnv.mu: answered, or returned on its own
}

type fetchReply struct {
	snapshot Snapshot
	err      error
}

// applyCall is one pending Apply call of the fake applier.
type applyCall struct {
	ctx      context.Context
	snapshot Snapshot
	reply    chan error
	done     bool // guarded by fakeEnv.mu
}

// fakeEnv is a provider, applier and subscriber the test controls through gates: every
// call blocks until the test answers it (or, unless ignoreCancel, until its context
// ends). It also collects what OnError was told.
type fakeEnv struct {
	t testing.TB
	// ignoreCancel makes calls wait for the test's answer even after their context
	// ended: a host whose answer races the cancellation.
	ignoreCancel bool

	fetches chan *fetchCall
	applies chan *applyCall
	errs    chan *SyncError

	mu           sync.Mutex
	inCall       int // calls registered and neither answered nor returned
	fetchCount   int
	applyCount   int
	applied      []Revision // revisions whose Apply the test acknowledged
	calls        []any      // every call, for cleanup
	subscribeErr error
	onSubscribe  func(sink Sink) // runs inside Subscribe, before it returns
	subscribes   int
	unsubscribes int
}

func newFakeEnv(t testing.TB) *fakeEnv {
	return &fakeEnv{
		t:       t,
		fetches: make(chan *fetchCall, 1024),
		applies: make(chan *applyCall, 1024),
		errs:    make(chan *SyncError, 1<<14),
	}
}

// GetSnapshot implements SnapshotProvider.
func (e *fakeEnv) GetSnapshot(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
	call := &fetchCall{ctx: ctx, req: req, reply: make(chan fetchReply, 1)}
	e.register(call, func() { e.fetchCount++; e.fetches <- call })
	if e.ignoreCancel {
		r := <-call.reply
		return r.snapshot, r.err
	}
	select {
	case r := <-call.reply:
		return r.snapshot, r.err
	case <-ctx.Done():
		e.finish(&call.done)
		return Snapshot{}, ctx.Err()
	}
}

// Apply implements Applier.
func (e *fakeEnv) Apply(ctx context.Context, snapshot Snapshot) error {
	call := &applyCall{ctx: ctx, snapshot: snapshot, reply: make(chan error, 1)}
	e.register(call, func() { e.applyCount++; e.applies <- call })
	if e.ignoreCancel {
		return <-call.reply
	}
	select {
	case err := <-call.reply:
		return err
	case <-ctx.Done():
		e.finish(&call.done)
		return ctx.Err()
	}
}

// register counts a call as pending and queues it for the test in one step, so that
// settle never sees a pending call the test cannot receive yet. The queues are buffered
// far beyond what a test makes, so queueing under mu never blocks.
func (e *fakeEnv) register(call any, queue func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inCall++
	e.calls = append(e.calls, call)
	queue()
}

// Subscribe implements Subscriber.
func (e *fakeEnv) Subscribe(_ context.Context, sink Sink) (func(), error) {
	e.mu.Lock()
	err, hook := e.subscribeErr, e.onSubscribe
	e.mu.Unlock()
	if hook != nil {
		hook(sink)
	}
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.subscribes++
	e.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Lock()
			e.unsubscribes++
			e.mu.Unlock()
		})
	}, nil
}

// subscribed reports whether a subscription is live (subscribed and not unsubscribed).
func (e *fakeEnv) subscribed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.subscribes > e.unsubscribes
}

// finish marks a call as no longer blocking the worker; it reports whether this was
// the first time.
func (e *fakeEnv) finish(done *bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if *done {
		return false
	}
	*done = true
	e.inCall--
	return true
}

func (e *fakeEnv) onError(serr *SyncError) {
	select {
	case e.errs <- serr:
	default:
		panic("fakeEnv: more than 16384 unconsumed errors")
	}
}

// config is a Config wired to the fakes.
func (e *fakeEnv) config() Config {
	return Config{
		Topic:      testTopic,
		Channel:    "w1",
		Subscriber: e,
		Provider:   e,
		Applier:    e,
		OnError:    e.onError,
	}
}

// channel builds a channel from the fakes, adjusted by mutate, and stops it at the end
// of the test, answering any call still pending so that Stop can return.
func (e *fakeEnv) channel(mutate func(*Config)) *Channel {
	e.t.Helper()
	cfg := e.config()
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := NewChannel(cfg)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { e.stopAndDrain(c) })
	return c
}

// stopAndDrain stops c, failing every pending call so that a host that ignores
// cancellation cannot hang the cleanup.
func (e *fakeEnv) stopAndDrain(c *Channel) {
	stopped := make(chan struct{})
	go func() {
		c.Stop()
		close(stopped)
	}()
	deadline := time.After(waitTimeout)
	for {
		e.mu.Lock()
		calls := append([]any(nil), e.calls...)
		e.mu.Unlock()
		for _, call := range calls {
			switch call := call.(type) {
			case *fetchCall:
				if e.finish(&call.done) {
					call.reply <- fetchReply{err: errors.New("test cleanup")}
				}
			case *applyCall:
				if e.finish(&call.done) {
					call.reply <- errors.New("test cleanup")
				}
			}
		}
		select {
		case <-stopped:
			return
		case <-deadline:
			panic(fmt.Sprintf("Stop did not return within %v of the end of the test", waitTimeout))
		default:
			runtime.Gosched()
		}
	}
}

// settle waits until the channel can make no progress on its own: its worker has
// exited, or it is blocked in a call to the fake provider or applier. Only the worker
// calls them, so a pending call means the worker is inside it.
func (e *fakeEnv) settle(c *Channel) {
	e.t.Helper()
	eventually(e.t, "the channel to settle (worker idle or blocked in a provider/applier call)", func() bool {
		if !busy(c) {
			return true
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.inCall > 0
	})
}

func (e *fakeEnv) expectFetch() *fetchCall {
	e.t.Helper()
	return receive(e.t, e.fetches, "a getSnapshot call")
}

func (e *fakeEnv) expectApply(revision Revision) *applyCall {
	e.t.Helper()
	call := receive(e.t, e.applies, fmt.Sprintf("an apply call of revision %s", revision))
	require.Equal(e.t, revision, call.snapshot.Revision, "apply call: got revision %s, want %s", call.snapshot.Revision, revision)
	return call
}

func (e *fakeEnv) answer(call *fetchCall, snapshot Snapshot) {
	if e.finish(&call.done) {
		call.reply <- fetchReply{snapshot: snapshot}
	}
}

func (e *fakeEnv) fail(call *fetchCall, err error) {
	if e.finish(&call.done) {
		call.reply <- fetchReply{err: err}
	}
}

func (e *fakeEnv) ack(call *applyCall, err error) {
	if !e.finish(&call.done) {
		return
	}
	if err == nil {
		e.mu.Lock()
		e.applied = append(e.applied, call.snapshot.Revision)
		e.mu.Unlock()
	}
	call.reply <- err
}

// answerFetch expects a fetch and answers it with snap.
func (e *fakeEnv) answerFetch(snapshot Snapshot) *fetchCall {
	e.t.Helper()
	call := e.expectFetch()
	e.answer(call, snapshot)
	return call
}

// fetchAndApply expects a fetch, answers it with revision rev and acknowledges the apply.
func (e *fakeEnv) fetchAndApply(rev Revision) {
	e.t.Helper()
	e.answerFetch(snap(rev))
	e.ack(e.expectApply(rev), nil)
}

func (e *fakeEnv) expectNoFetch(c *Channel) {
	e.t.Helper()
	e.settle(c)
	select {
	case call := <-e.fetches:
		e.t.Fatalf("got a getSnapshot call %+v, want none", call.req)
	default:
	}
}

func (e *fakeEnv) expectNoApply(c *Channel) {
	e.t.Helper()
	e.settle(c)
	select {
	case call := <-e.applies:
		e.t.Fatalf("got an apply call of revision %s, want none", call.snapshot.Revision)
	default:
	}
}

func (e *fakeEnv) expectError(phase Phase) *SyncError {
	e.t.Helper()
	serr := receive(e.t, e.errs, fmt.Sprintf("an error of phase %q", phase))
	require.Equal(e.t, phase, serr.Phase, "error phase: got %q (%v), want %q", serr.Phase, serr, phase)
	return serr
}

func (e *fakeEnv) expectNoError(c *Channel) {
	e.t.Helper()
	e.settle(c)
	select {
	case serr := <-e.errs:
		e.t.Fatalf("got error %v (phase %s), want none", serr, serr.Phase)
	default:
	}
}

func (e *fakeEnv) fetchTotal() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fetchCount
}

func (e *fakeEnv) appliedRevisions() []Revision {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Revision(nil), e.applied...)
}

// startAsync runs Start on its own goroutine and returns where its result arrives.
func startAsync(c *Channel) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.Start(context.Background()) }()
	return done
}

// started starts c with the fakes and applies rev as its first snapshot.
func (e *fakeEnv) started(c *Channel, rev Revision) {
	e.t.Helper()
	done := startAsync(c)
	e.fetchAndApply(rev)
	require.NoError(e.t, receive(e.t, done, "Start to return"))
	require.Equal(e.t, rev, c.LocalRevision())
}

func snap(rev Revision) Snapshot {
	return Snapshot{Revision: rev, Data: json.RawMessage(fmt.Sprintf(`{"rev":%q}`, rev))}
}

func snapEpoch(rev Revision, epoch string) Snapshot {
	s := snap(rev)
	s.Epoch = epoch
	return s
}

// event is a valid invalidation payload for the test topic.
func event(rev Revision) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"topic":%q,"revision":%q}`, testTopic, rev))
}

func eventEpoch(rev Revision, epoch string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"topic":%q,"revision":%q,"epoch":%q}`, testTopic, rev, epoch))
}

// readVectors decodes a file of testdata, relative to the module root.
func readVectors(t testing.TB, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", name))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, v), "decoding %s", name)
}

// busy reports whether c's worker has a refresh in flight or one to begin.
func busy(c *Channel) bool {
	busy := false
	c.view(func(s *chanState) {
		live := s.phase != StateStopped && s.ctx != nil && s.ctx.Err() == nil
		busy = s.inFlight || live && (s.dirty || s.fresh)
	})
	return busy
}
