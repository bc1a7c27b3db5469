package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/internal/chaos"
)

// TestChaos is the in-process chaos property test of the engine (the e2e package runs the
// same properties over the real binary). A seeded driver mixes, for a bounded number of
// events and seconds: channels opening (some failing to subscribe) and closing at random
// over host-sourced topics (one SharedProvider per topic), channel-sourced topics (one
// provider per channel, some with a retry policy) and store-like topics (reliable
// events); bursts of invalidations that a faulty bus drops, duplicates, reorders and
// delays; getSnapshot answers that are slow, fail, time out, are stale or malformed;
// apply answers that fail, are slow or time out; epoch changes; store writes; explicit
// refreshes; garbage payloads.
//
// Invariants, checked on every run:
//   - per channel, applied revisions strictly increase within one epoch, and every
//     applied data belongs to its topic, epoch and revision;
//   - no apply starts after Stop returned (or after Start failed);
//   - once the chaos stops, one final invalidation per topic (a write for store topics),
//     sent without waiting for the engines to go idle, brings every open channel to its
//     topic's final epoch and revision;
//   - upstream getSnapshot calls of a host topic stay within 2 per burst, plus one per
//     fresh request (start, refresh) and one per injected fault that can cost one
//     (a faulty answer, an event delivered after its epoch ended): never channels ×
//     events;
//   - after every channel stopped, goroutines return to their baseline and the heap to
//     its baseline within a small slack.
//
// CHAOS_SEED replays a run's random choices (the interleaving of goroutines still
// varies); CHAOS_EVENTS and CHAOS_DURATION scale it: it stops at whichever comes first.
// task soak runs it long.
func TestChaos(t *testing.T) {
	settings := chaos.SettingsFromEnv(t, 15000, 1, 20*time.Second)
	t.Logf("chaos seed %d (replay with CHAOS_SEED=%d), up to %d events or %s", settings.Seed, settings.Seed, settings.Events, settings.Duration)
	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	var baseMem runtime.MemStats
	runtime.ReadMemStats(&baseMem)

	w := newChaosWorld(t, settings)
	w.run()
	w.converge()
	w.checkFetchBound()
	w.closeAll()
	leaks := w.checkLeaks(baseGoroutines, baseMem.HeapAlloc)
	w.report(leaks)
}

type chaosKind string

const (
	chaosHost    chaosKind = "host"    // one SharedProvider over one faulty upstream
	chaosOwn     chaosKind = "channel" // a faulty provider per channel
	chaosStoreLk chaosKind = "store"   // a reliable local source, reliable events
)

const (
	chaosCallTimeout = 25 * time.Millisecond
	chaosMaxOpen     = 32
	chaosMaxDelayed  = 256 // delayed deliveries in flight at once
)

type chaosTopic struct {
	name   string
	kind   chaosKind
	shared *SharedProvider // host topics

	// guarded by chaosWorld.mu
	epoch     string
	rev       uint64
	bursts    int // bursts of changes, epoch changes and the final invalidation
	fresh     int // Start and Refresh calls on channels of the topic
	faulty    int // upstream answers that failed, timed out, were stale or malformed
	lateEpoch int // events delivered after their epoch had ended
	fetches   int // upstream getSnapshot calls
	events    int // invalidations sent (before bus faults)
}

type chaosChan struct {
	w     *chaosWorld
	id    int
	name  string
	topic *chaosTopic
	eng   *Channel

	// guarded by chaosWorld.mu
	sink      Sink
	state     string // opening, open, failed, closing, closed
	ended     bool   // Stop returned or Start failed: no apply may start any more
	hasLast   bool
	lastEpoch string
	lastRev   Revision
	applies   int
	held      []InvalidationEvent // the bus's reorder buffer
}

type chaosWorld struct {
	t        *testing.T
	settings chaos.Settings
	driver   *rand.Rand // the driver's choices: replayed exactly by the seed
	healed   atomic.Bool

	ops sync.WaitGroup // Start, Stop and Refresh calls
	bus sync.WaitGroup // delayed deliveries

	mu         sync.Mutex
	faultRand  *rand.Rand // fault choices, drawn in call order
	topics     []*chaosTopic
	chans      []*chaosChan
	faults     map[string]int
	errors     map[Phase]int
	counts     map[string]int
	violations []string
	delayed    int
	changed    chan struct{}
	events     int
	elapsed    time.Duration
	cutByTime  bool
}

func newChaosWorld(t *testing.T, s chaos.Settings) *chaosWorld {
	w := &chaosWorld{
		t: t, settings: s,
		driver:    rand.New(rand.NewPCG(s.Seed, 0x5eed)),
		faultRand: rand.New(rand.NewPCG(s.Seed, 0xfa17)),
		faults:    map[string]int{}, errors: map[Phase]int{}, counts: map[string]int{},
		changed: make(chan struct{}),
	}
	for i, kind := range []chaosKind{chaosHost, chaosHost, chaosOwn, chaosOwn, chaosStoreLk, chaosStoreLk} {
		tp := &chaosTopic{name: fmt.Sprintf("%s-%d", kind, i), kind: kind, epoch: "e0"}
		if kind != chaosStoreLk {
			tp.rev = 1
		}
		if kind == chaosHost {
			tp.shared = NewSharedProvider(chaosUpstream{w: w, topic: tp}, chaosCallTimeout)
		}
		w.topics = append(w.topics, tp)
	}
	return w
}

// violation records a broken invariant; the test fails at the end with the seed.
func (w *chaosWorld) violationLocked(format string, args ...any) {
	w.counts["violations"]++
	if len(w.violations) < 30 {
		w.violations = append(w.violations, fmt.Sprintf(format, args...))
	}
}

func (w *chaosWorld) signalLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func chaosData(topic, epoch string, rev Revision) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"topic":%q,"epoch":%q,"revision":%q}`, topic, epoch, rev))
}

func chaosRev(n uint64) Revision { return Revision(strconv.FormatUint(n, 10)) }

// pickLocked draws one fault kind by weight; healed worlds answer "ok".
func (w *chaosWorld) pickLocked(kinds []string, weights []int) string {
	if w.healed.Load() {
		return "ok"
	}
	return chaos.Pick(w.faultRand, kinds, weights)
}

var (
	chaosFetchFaults  = []string{"ok", "slow", "fail", "timeout", "stale", "malformed"}
	chaosFetchWeights = []int{60, 14, 9, 4, 9, 4}
	chaosApplyFaults  = []string{"ok", "slow", "fail", "timeout"}
	chaosApplyWeights = []int{82, 6, 9, 3}
)

// chaosUpstream is the faulty source of a host topic (behind its SharedProvider) or of
// one channel of a channel-sourced topic.
type chaosUpstream struct {
	w     *chaosWorld
	topic *chaosTopic
}

func (u chaosUpstream) GetSnapshot(ctx context.Context, _ SnapshotRequest) (Snapshot, error) {
	w := u.w
	w.mu.Lock()
	u.topic.fetches++
	epoch, rev := u.topic.epoch, u.topic.rev // the state when the call began
	fault := w.pickLocked(chaosFetchFaults, chaosFetchWeights)
	if fault == "stale" && rev <= 1 {
		fault = "ok"
	}
	var staleBy uint64
	if fault == "stale" {
		staleBy = 1 + w.faultRand.Uint64N(min(rev-1, 3))
	}
	delay := time.Duration(w.faultRand.IntN(12)+1) * time.Millisecond
	if fault != "ok" {
		w.faults["getSnapshot "+fault]++
		if fault != "slow" {
			u.topic.faulty++
		}
	}
	w.mu.Unlock()

	switch fault {
	case "slow":
		chaos.Wait(ctx, delay)
		w.mu.Lock()
		if u.topic.epoch != epoch {
			// Read before the source restarted, answered after: an answer from the old
			// life, which may cost the shared cache one more fetch.
			w.faults["getSnapshot slow across an epoch change"]++
			u.topic.faulty++
		}
		w.mu.Unlock()
	case "fail":
		return Snapshot{}, errors.New("chaos: the source failed")
	case "timeout":
		<-ctx.Done()
		return Snapshot{}, ctx.Err()
	case "stale":
		rev -= staleBy
	case "malformed":
		return Snapshot{Revision: "007", Epoch: epoch, Data: json.RawMessage(`"garbage"`)}, nil
	}
	r := chaosRev(rev)
	return Snapshot{Revision: r, Epoch: epoch, Data: chaosData(u.topic.name, epoch, r)}, nil
}

// chaosStore is a reliable local source, as the sidecar's embedded store.
type chaosStore struct {
	w     *chaosWorld
	topic *chaosTopic
}

func (s chaosStore) GetSnapshot(context.Context, SnapshotRequest) (Snapshot, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.topic.fetches++
	if s.topic.rev == 0 {
		return Snapshot{Revision: ZeroRevision, Epoch: s.topic.epoch}, nil
	}
	r := chaosRev(s.topic.rev)
	return Snapshot{Revision: r, Epoch: s.topic.epoch, Data: chaosData(s.topic.name, s.topic.epoch, r)}, nil
}

// Subscribe implements Subscriber: a few subscriptions fail.
func (cc *chaosChan) Subscribe(_ context.Context, sink Sink) (func(), error) {
	w := cc.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pickLocked([]string{"ok", "fail"}, []int{97, 3}) == "fail" {
		w.faults["subscribe fail"]++
		return nil, errors.New("chaos: subscribe failed")
	}
	cc.sink = sink
	return func() {
		w.mu.Lock()
		cc.sink = nil
		w.mu.Unlock()
	}, nil
}

// Apply implements Applier and checks the invariants of every apply.
func (cc *chaosChan) Apply(ctx context.Context, snapshot Snapshot) error {
	w := cc.w
	w.mu.Lock()
	if cc.ended {
		w.violationLocked("%s (%s): apply of revision %s started after Stop returned or Start failed", cc.name, cc.topic.name, snapshot.Revision)
	}
	fault := w.pickLocked(chaosApplyFaults, chaosApplyWeights)
	delay := time.Duration(w.faultRand.IntN(8)+1) * time.Millisecond
	if fault != "ok" {
		w.faults["apply "+fault]++
	}
	if want := chaosData(cc.topic.name, snapshot.Epoch, snapshot.Revision); string(snapshot.Data) != string(want) {
		w.violationLocked("%s (%s): apply of revision %s epoch %q carries data %s, want %s", cc.name, cc.topic.name, snapshot.Revision, snapshot.Epoch, snapshot.Data, want)
	}
	w.mu.Unlock()

	switch fault {
	case "slow":
		chaos.Wait(ctx, delay)
	case "fail":
		return errors.New("chaos: the window could not apply")
	case "timeout":
		<-ctx.Done()
		return ctx.Err()
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if cc.hasLast && cc.lastEpoch == snapshot.Epoch && snapshot.Revision.Compare(cc.lastRev) <= 0 {
		w.violationLocked("%s (%s): applied revision %s after %s in epoch %q: want strictly increasing", cc.name, cc.topic.name, snapshot.Revision, cc.lastRev, snapshot.Epoch)
	}
	cc.hasLast, cc.lastEpoch, cc.lastRev = true, snapshot.Epoch, snapshot.Revision
	cc.applies++
	w.counts["applies"]++
	w.signalLocked()
	return nil
}

func (w *chaosWorld) onError(serr *SyncError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errors[serr.Phase]++
	if serr.Topic == "" || serr.Err == nil {
		w.violationLocked("error context without topic or cause: %+v", serr)
	}
}

// run drives the chaos until the event budget or the time budget is spent.
func (w *chaosWorld) run() {
	start := time.Now()
	deadline := start.Add(w.settings.Duration)
	for w.events < w.settings.Events {
		if time.Now().After(deadline) {
			w.cutByTime = true
			break
		}
		w.step()
		runtime.Gosched() // let the engines run between steps

	}
	w.elapsed = time.Since(start)
	w.healed.Store(true)
	// Flush what the bus still holds (old events: harmless) and wait for the harness's own
	// goroutines. The engines are not waited for: the final invalidation must work even
	// while refreshes started during the chaos are still in flight.
	w.mu.Lock()
	var held []*chaosChan
	for _, cc := range w.chans {
		if len(cc.held) > 0 {
			held = append(held, cc)
		}
	}
	w.mu.Unlock()
	for _, cc := range held {
		w.flush(cc)
	}
	w.waitGroup(&w.bus, "delayed deliveries")
	w.waitGroup(&w.ops, "Start, Stop and Refresh calls")
}

func (w *chaosWorld) waitGroup(wg *sync.WaitGroup, what string) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		w.mu.Lock()
		w.violationLocked("%s did not return within %v of the end of the chaos (hang)", what, waitTimeout)
		w.mu.Unlock()
		w.t.Fatalf("chaos seed %d: %s hung; violations: %s", w.settings.Seed, what, strings.Join(w.violations, "\n"))
	}
}

var (
	chaosSteps   = []string{"open", "close", "burst", "epoch", "write", "refresh", "garbage", "flush", "pause"}
	chaosWeights = []int{12, 10, 26, 2, 16, 6, 3, 5, 3}
)

func (w *chaosWorld) step() {
	total := 0
	for _, wt := range chaosWeights {
		total += wt
	}
	n := w.driver.IntN(total)
	kind := chaosSteps[len(chaosSteps)-1]
	for i, wt := range chaosWeights {
		if n < wt {
			kind = chaosSteps[i]
			break
		}
		n -= wt
	}
	tp := w.topics[w.driver.IntN(len(w.topics))]
	switch kind {
	case "open":
		w.open(tp)
	case "close":
		if cc := w.pickChan(func(cc *chaosChan) bool { return cc.state == "open" || cc.state == "opening" }); cc != nil {
			w.close(cc)
		}
	case "burst":
		if tp.kind == chaosStoreLk {
			w.write(tp)
		} else {
			w.burst(tp)
		}
	case "epoch":
		if tp.kind != chaosStoreLk {
			w.newEpoch(tp)
		}
	case "write":
		if tp.kind == chaosStoreLk {
			w.write(tp)
		} else {
			w.burst(tp)
		}
	case "refresh":
		if cc := w.pickChan(func(cc *chaosChan) bool { return cc.state == "open" }); cc != nil {
			w.refresh(cc)
		}
	case "garbage":
		if cc := w.pickChan(func(cc *chaosChan) bool { return cc.state == "open" }); cc != nil {
			w.garbage(cc)
		}
	case "flush":
		if cc := w.pickChan(func(cc *chaosChan) bool { return len(cc.held) > 0 }); cc != nil {
			w.flush(cc)
		}
	case "pause":
		// A quiet moment for the host: the engines catch up, timeouts expire. This shapes
		// the load; nothing waits on it.
		time.Sleep(time.Duration(w.driver.IntN(5000)) * time.Microsecond)
		return
	}
	w.events++
}

// pickChan draws one channel that matches, with the driver's rand.
func (w *chaosWorld) pickChan(match func(*chaosChan) bool) *chaosChan {
	w.mu.Lock()
	var candidates []*chaosChan
	for _, cc := range w.chans {
		if match(cc) {
			candidates = append(candidates, cc)
		}
	}
	w.mu.Unlock()
	if len(candidates) == 0 {
		return nil
	}
	return candidates[w.driver.IntN(len(candidates))]
}

func (w *chaosWorld) liveCount() int {
	n := 0
	for _, cc := range w.chans {
		if cc.state == "open" || cc.state == "opening" {
			n++
		}
	}
	return n
}

func (w *chaosWorld) open(tp *chaosTopic) {
	w.mu.Lock()
	if w.liveCount() >= chaosMaxOpen {
		w.mu.Unlock()
		return
	}
	cc := &chaosChan{w: w, id: len(w.chans), topic: tp, state: "opening"}
	cc.name = fmt.Sprintf("c%d", cc.id)
	tp.fresh++
	w.chans = append(w.chans, cc)
	w.counts["channels opened"]++
	w.mu.Unlock()

	cfg := Config{Topic: tp.name, Channel: cc.name, Subscriber: cc, Applier: cc, OnError: w.onError, CallTimeout: chaosCallTimeout}
	switch tp.kind {
	case chaosHost:
		cfg.Provider = tp.shared
	case chaosOwn:
		cfg.Provider = chaosUpstream{w: w, topic: tp}
		if w.driver.IntN(3) == 0 {
			cfg.Retry = &RetryPolicy{MaxAttempts: 2, InitialDelay: time.Millisecond}
		}
	case chaosStoreLk:
		cfg.Provider = chaosStore{w: w, topic: tp}
	}
	eng, err := NewChannel(cfg)
	require.NoError(w.t, err)
	cc.eng = eng
	w.ops.Add(1)
	go func() {
		defer w.ops.Done()
		err := eng.Start(context.Background())
		w.mu.Lock()
		defer w.mu.Unlock()
		if cc.state != "opening" {
			return // closed while starting
		}
		if err != nil {
			cc.state, cc.ended = "failed", true
			w.counts["starts failed"]++
			return
		}
		cc.state = "open"
	}()
}

func (w *chaosWorld) close(cc *chaosChan) {
	w.mu.Lock()
	if cc.state != "open" && cc.state != "opening" {
		w.mu.Unlock() // its Start failed since it was picked
		return
	}
	cc.state = "closing"
	w.mu.Unlock()
	w.ops.Add(1)
	go func() {
		defer w.ops.Done()
		cc.eng.Stop()
		w.mu.Lock()
		cc.state, cc.ended = "closed", true
		w.counts["channels closed"]++
		w.mu.Unlock()
	}()
}

func (w *chaosWorld) refresh(cc *chaosChan) {
	w.mu.Lock()
	cc.topic.fresh++
	w.counts["refreshes"]++
	w.mu.Unlock()
	w.ops.Add(1)
	go func() {
		defer w.ops.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := cc.eng.Refresh(ctx); err != nil {
			w.mu.Lock()
			w.counts["refreshes failed"]++
			w.mu.Unlock()
		}
	}()
}

// burst moves a host or channel-sourced topic on by 1..8 revisions at once and sends an
// invalidation per revision, in a random order, through the faulty bus.
func (w *chaosWorld) burst(tp *chaosTopic) {
	k := 1 + w.driver.IntN(8)
	w.mu.Lock()
	first := tp.rev + 1
	tp.rev += uint64(k)
	tp.bursts++
	epoch := tp.epoch
	w.mu.Unlock()
	revs := make([]uint64, k)
	for i := range revs {
		revs[i] = first + uint64(i)
	}
	if w.driver.IntN(3) == 0 {
		w.driver.Shuffle(len(revs), func(i, j int) { revs[i], revs[j] = revs[j], revs[i] })
	}
	for _, r := range revs {
		ev := InvalidationEvent{Topic: tp.name, Revision: chaosRev(r), Epoch: epoch}
		if w.driver.IntN(10) < 3 {
			ev.Epoch = "" // hosts may leave the epoch out of events
		}
		w.broadcast(tp, ev)
	}
	w.events += k - 1
}

// newEpoch restarts a topic's source: a new epoch whose revisions start over.
func (w *chaosWorld) newEpoch(tp *chaosTopic) {
	w.mu.Lock()
	tp.epoch = fmt.Sprintf("e%d", w.events)
	tp.rev = 1 + w.driver.Uint64N(3)
	tp.bursts++
	ev := InvalidationEvent{Topic: tp.name, Revision: chaosRev(tp.rev), Epoch: tp.epoch}
	w.counts["epoch changes"]++
	w.mu.Unlock()
	w.broadcast(tp, ev)
}

// write is a store write: the revision moves on and every subscribed channel hears of
// it, reliably, as the sidecar's store does.
func (w *chaosWorld) write(tp *chaosTopic) {
	w.mu.Lock()
	tp.rev++
	tp.events++
	ev := InvalidationEvent{Topic: tp.name, Revision: chaosRev(tp.rev), Epoch: tp.epoch}
	var sinks []Sink
	for _, cc := range w.chans {
		if cc.topic == tp && cc.sink != nil {
			sinks = append(sinks, cc.sink)
		}
	}
	w.counts["store writes"]++
	w.mu.Unlock()
	for _, s := range sinks {
		s.Invalidate(ev)
	}
}

func (w *chaosWorld) broadcast(tp *chaosTopic, ev InvalidationEvent) {
	w.mu.Lock()
	tp.events++
	var targets []*chaosChan
	for _, cc := range w.chans {
		if cc.topic == tp && (cc.state == "open" || cc.state == "opening" || cc.state == "closing") {
			targets = append(targets, cc)
		}
	}
	w.mu.Unlock()
	for _, cc := range targets {
		w.send(cc, ev)
	}
}

// send delivers one event to one channel through the faulty bus.
func (w *chaosWorld) send(cc *chaosChan, ev InvalidationEvent) {
	if w.healed.Load() {
		w.deliver(cc, ev)
		return
	}
	n := w.driver.IntN(100)
	w.mu.Lock()
	switch {
	case n < 12:
		w.faults["event drop"]++
		w.mu.Unlock()
	case n < 20:
		w.faults["event duplicate"]++
		w.mu.Unlock()
		w.deliver(cc, ev)
		w.deliver(cc, ev)
	case n < 32:
		w.faults["event reorder"]++
		cc.held = append(cc.held, ev)
		w.mu.Unlock()
	case n < 44 && w.delayed < chaosMaxDelayed:
		w.faults["event delay"]++
		w.delayed++
		delay := time.Duration(w.faultRand.IntN(10)+1) * time.Millisecond
		w.mu.Unlock()
		w.bus.Add(1)
		go func() {
			defer w.bus.Done()
			timer := time.NewTimer(delay)
			<-timer.C
			w.deliver(cc, ev)
			w.mu.Lock()
			w.delayed--
			w.mu.Unlock()
		}()
	default:
		w.mu.Unlock()
		w.deliver(cc, ev)
	}
}

// flush delivers a channel's held events in a random order.
func (w *chaosWorld) flush(cc *chaosChan) {
	w.mu.Lock()
	held := cc.held
	cc.held = nil
	w.mu.Unlock()
	rand.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	for _, ev := range held {
		w.deliver(cc, ev)
	}
}

// deliver hands the event to the channel if it is subscribed, as raw JSON half the time.
func (w *chaosWorld) deliver(cc *chaosChan, ev InvalidationEvent) {
	w.mu.Lock()
	sink := cc.sink
	if ev.Epoch != "" && ev.Epoch != cc.topic.epoch {
		cc.topic.lateEpoch++
	}
	w.counts["deliveries"]++
	raw := w.faultRand.IntN(2) == 0
	w.mu.Unlock()
	if sink == nil {
		return
	}
	if raw {
		b, err := json.Marshal(ev)
		if err != nil {
			panic(err)
		}
		sink.InvalidateRaw(b)
		return
	}
	sink.Invalidate(ev)
}

var chaosGarbage = []string{
	`{"topic":"%s","revision":"007"}`,
	`{"topic":"%s","revision":42}`,
	`{"topic":"%s","revision":"18446744073709551616"}`,
	`{"topic":"  ","revision":"1"}`,
	`{"topic":"%s"}`,
	`[1,2,3]`,
	`"%s"`,
	`{"topic":"%s","revision":"1","epoch":7}`,
	`{"topic":"%s","revision":"-1"}`,
	`not json at all`,
}

func (w *chaosWorld) garbage(cc *chaosChan) {
	format := chaosGarbage[w.driver.IntN(len(chaosGarbage))]
	payload := format
	if strings.Contains(format, "%s") {
		payload = fmt.Sprintf(format, cc.topic.name)
	}
	w.mu.Lock()
	w.faults["event garbage"]++
	w.mu.Unlock()
	cc.eng.InvalidateRaw(json.RawMessage(payload))
}

// converge sends one final invalidation per topic (a write for store topics) to every
// open channel and waits until each has applied its topic's final epoch and revision.
func (w *chaosWorld) converge() {
	w.mu.Lock()
	final := map[*chaosTopic]InvalidationEvent{}
	for _, tp := range w.topics {
		if tp.kind == chaosStoreLk {
			continue
		}
		tp.bursts++
		tp.events++
		final[tp] = InvalidationEvent{Topic: tp.name, Revision: chaosRev(tp.rev), Epoch: tp.epoch}
	}
	var open []*chaosChan
	for _, cc := range w.chans {
		if cc.state == "open" {
			open = append(open, cc)
		}
	}
	w.mu.Unlock()
	for _, cc := range open {
		if ev, ok := final[cc.topic]; ok {
			w.deliver(cc, ev)
		}
	}
	for _, tp := range w.topics {
		if tp.kind == chaosStoreLk {
			w.write(tp)
		}
	}

	converged := func(cc *chaosChan) bool {
		want := chaosRev(cc.topic.rev)
		return cc.hasLast && cc.lastEpoch == cc.topic.epoch && cc.lastRev == want
	}
	deadline := time.After(waitTimeout)
	for {
		w.mu.Lock()
		var behind []*chaosChan
		for _, cc := range open {
			if !converged(cc) {
				behind = append(behind, cc)
			}
		}
		changed := w.changed
		w.mu.Unlock()
		if len(behind) == 0 {
			break
		}
		select {
		case <-changed:
			continue
		case <-deadline:
		}
		w.mu.Lock()
		for _, cc := range behind {
			st := cc.eng.Status()
			w.violationLocked("%s (%s, source %s): did not converge after the final invalidation: got epoch %q revision %s (engine: %s, local %s, epoch %q, %+v), want epoch %q revision %d",
				cc.name, cc.topic.name, cc.topic.kind, cc.lastEpoch, cc.lastRev, st.State, st.LocalRevision, st.Epoch, st.Counters, cc.topic.epoch, cc.topic.rev)
		}
		w.mu.Unlock()
		break
	}
	// The engine agrees with what was applied. The window records an apply before it
	// returns, and the engine moves localRevision only once it has returned, so under
	// load the last apply can still be on its way back: wait for it, bounded. The engine
	// has no event for that step (a Refresh to wait on would fetch, and change the
	// fetch counts checkFetchBound judges), so Status is polled.
	disagree := func() []*chaosChan {
		var out []*chaosChan
		for _, cc := range open {
			st := cc.eng.Status()
			if converged(cc) && (st.LocalRevision != cc.lastRev || st.Epoch != cc.lastEpoch) {
				out = append(out, cc)
			}
		}
		return out
	}
	agreeBy := time.Now().Add(waitTimeout)
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(disagree()) > 0 && time.Now().Before(agreeBy) {
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
		w.mu.Lock()
	}
	for _, cc := range disagree() {
		st := cc.eng.Status()
		w.violationLocked("%s: engine reports local %s epoch %q, the window applied %s epoch %q", cc.name, st.LocalRevision, st.Epoch, cc.lastRev, cc.lastEpoch)
	}
	w.counts["open at the end"] = len(open)
}

// checkFetchBound: upstream fetches of a host topic are bounded by bursts, fresh
// requests and injected faults, never by channels × events.
func (w *chaosWorld) checkFetchBound() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, tp := range w.topics {
		if tp.kind != chaosHost {
			continue
		}
		bound := 2*tp.bursts + tp.fresh + tp.faulty + tp.lateEpoch
		w.t.Logf("host topic %s: %d getSnapshot for %d invalidations in %d bursts, %d fresh requests, %d faulty answers, %d late-epoch deliveries: bound %d",
			tp.name, tp.fetches, tp.events, tp.bursts, tp.fresh, tp.faulty, tp.lateEpoch, bound)
		if tp.fetches > bound {
			w.violationLocked("host topic %s: %d upstream getSnapshot calls, over the bound of %d (2×%d bursts + %d fresh + %d faulty + %d late-epoch)",
				tp.name, tp.fetches, bound, tp.bursts, tp.fresh, tp.faulty, tp.lateEpoch)
		}
	}
}

func (w *chaosWorld) closeAll() {
	w.mu.Lock()
	var live []*chaosChan
	for _, cc := range w.chans {
		if cc.state == "open" {
			live = append(live, cc)
		}
	}
	w.mu.Unlock()
	for _, cc := range live {
		w.close(cc)
	}
	w.waitGroup(&w.ops, "closing every channel")
	for _, tp := range w.topics {
		if tp.shared != nil {
			tp.shared.Close()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cc := range w.chans {
		if cc.sink != nil {
			w.violationLocked("%s: still subscribed after Stop", cc.name)
		}
		if st := cc.eng.Status().State; st != StateStopped && st != StateIdle {
			w.violationLocked("%s: state %s after the end, want stopped or idle", cc.name, st)
		}
	}
}

// checkLeaks waits (bounded) for the goroutines to return to their baseline and checks
// the heap did too, within a slack for the runtime's own caches.
func (w *chaosWorld) checkLeaks(baseGoroutines int, baseHeap uint64) []string {
	var leaks []string
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > baseGoroutines && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > baseGoroutines {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaks = append(leaks, fmt.Sprintf("goroutines: %d after every channel stopped, baseline %d\n%s", n, baseGoroutines, buf))
	}
	const slack = 8 << 20
	w.mu.Lock()
	w.chans, w.topics = nil, nil // the harness's own records are not the engine's memory
	w.mu.Unlock()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.t.Logf("heap: %d KiB at the start, %d KiB after every channel stopped", baseHeap>>10, m.HeapAlloc>>10)
	if m.HeapAlloc > baseHeap+slack {
		leaks = append(leaks, fmt.Sprintf("heap: %d KiB after every channel stopped, baseline %d KiB (+%d KiB slack)", m.HeapAlloc>>10, baseHeap>>10, slack>>10))
	}
	return leaks
}

func (w *chaosWorld) report(leaks []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "chaos (engine, in process) seed %d: %d events in %s", w.settings.Seed, w.events, w.elapsed.Round(time.Millisecond))
	if w.cutByTime {
		fmt.Fprintf(&b, " (cut by CHAOS_DURATION=%s)", w.settings.Duration)
	}
	fmt.Fprintf(&b, "\n  channels: %d opened, %d closed, %d failed to start, %d open at the end (max %d at once)",
		w.counts["channels opened"], w.counts["channels closed"], w.counts["starts failed"], w.counts["open at the end"], chaosMaxOpen)
	fmt.Fprintf(&b, "\n  traffic: %d deliveries, %d store writes, %d epoch changes, %d refreshes (%d failed), %d applies",
		w.counts["deliveries"], w.counts["store writes"], w.counts["epoch changes"], w.counts["refreshes"], w.counts["refreshes failed"], w.counts["applies"])
	totalFaults := 0
	for _, n := range w.faults {
		totalFaults += n
	}
	fmt.Fprintf(&b, "\n  faults injected: %d: %s", totalFaults, chaos.FormatCounts(w.faults))
	errs := map[string]int{}
	for p, n := range w.errors {
		errs[string(p)] = n
	}
	fmt.Fprintf(&b, "\n  errors reported by phase: %s", chaos.FormatCounts(errs))
	fmt.Fprintf(&b, "\n  invariant violations: %d", w.counts["violations"])
	fmt.Fprintf(&b, "\n  leaks: %d", len(leaks))
	w.t.Log(b.String())
	if w.counts["violations"] > 0 || len(leaks) > 0 {
		w.t.Errorf("chaos seed %d (replay: CHAOS_SEED=%d go test -race -run 'TestChaos$' ./engine):\n%s\n%s",
			w.settings.Seed, w.settings.Seed, strings.Join(w.violations, "\n"), strings.Join(leaks, "\n"))
	}
}

// Found by TestChaos: an invalidation that arrived while a refresh asked for the same
// revision was in flight was folded into that refresh; when the refresh then failed, the
// invalidation was lost and the channel stayed stale although the host's last word was
// delivered. DESIGN §4: an event that arrives meanwhile causes one trailing refresh unless
// the fetched snapshot covers it, and a failed refresh covers nothing.
func TestChaosFoundEventDuringFailingRunIsNotLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(env *fakeEnv, call *fetchCall)
	}{
		{"getSnapshot fails", func(env *fakeEnv, call *fetchCall) {
			env.fail(call, errors.New("source is down"))
			env.expectError(PhaseGetSnapshot)
		}},
		{"stale snapshot", func(env *fakeEnv, call *fetchCall) {
			env.answer(call, snap("1"))
			env.expectError(PhaseProtocol)
		}},
		{"apply fails", func(env *fakeEnv, call *fetchCall) {
			env.answer(call, snap("2"))
			env.ack(env.expectApply("2"), errors.New("window busy"))
			env.expectError(PhaseApply)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newFakeEnv(t)
			c := env.channel(nil)
			env.started(c, "1")
			c.InvalidateRaw(event("2"))
			call := env.expectFetch()
			c.InvalidateRaw(event("2")) // the host says it again while that refresh runs
			tc.fail(env, call)
			trailing := env.expectFetch()
			require.Equal(t, Revision("2"), trailing.req.MinRevision, "the trailing refresh asks for the event's revision")
			env.answer(trailing, snap("2"))
			env.ack(env.expectApply("2"), nil)
			env.expectNoFetch(c)
			require.Equal(t, Revision("2"), c.LocalRevision())
		})
	}
}
