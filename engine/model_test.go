package engine

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// The reference model (in the spirit of x/sync's quick.CheckEqual tests), written from the
// seed's contracts and DESIGN's epochs only, never from the engine's flags: random
// sequences of events (in and out of order, duplicates, late ones of an old epoch),
// refreshes, resync ticks, snapshot answers (newer, older, empty, malformed, failed, of a
// new epoch), apply results, a stop in the middle and failed starts drive a real Channel
// through the fakes' gates. The harness answers whatever the engine asks; after every
// step the model checks what the engine did that a window can observe:
//
//   - the revision gate: the first snapshot after Start is applied; afterwards exactly
//     the snapshots strictly newer than localRevision in its epoch, or of another epoch;
//   - localRevision (and its epoch) moves only when an apply succeeded, to that snapshot;
//   - an event not newer than localRevision in its epoch is ignored, and counted so;
//   - coalescing: every fetch has a cause that arrived after the previous fetch began and
//     that localRevision does not already cover (a refresh, a resync tick, an event), so a
//     burst costs the fetch in flight plus at most one more;
//   - liveness: once the engine is idle, every such cause was served by a fetch that
//     began after it, or localRevision covers it, and every Refresh returned;
//   - the call counts (Counters) are the ones observed;
//   - after Stop, nothing: no fetch, no apply, the same localRevision;
//   - a failed Start leaves nothing: idle, unsubscribed, localRevision "0", and Start
//     works again.

var (
	modelSeed = flag.Uint64("model.seed", 0, "seed of TestEngineMatchesReferenceModel (0: from the clock)")
	modelRuns = flag.Int("model.runs", 300, "sequences TestEngineMatchesReferenceModel checks")
)

// modelResync is the resync interval, in the synctest bubble's fake time.
const modelResync = time.Hour

type modelOpKind int

const (
	opEvent   modelOpKind = iota // an invalidation of (epoch, rev)
	opRefresh                    // an explicit Refresh
	opResync                     // one resync tick
	opAnswer                     // answer the pending fetch (no-op if none)
	opApply                      // answer the pending apply (no-op if none)
	opStop                       // Stop, mid-sequence
)

type answerKind int

const (
	answerSnapshot answerKind = iota // {epoch, revision: rev, data}
	answerEmpty                      // {revision: "0"}: the source has no state
	answerInvalid                    // a non-canonical revision
	answerFail                       // the provider fails
)

// startFailure is how the first Start of a sequence fails, if it does.
type startFailure int

const (
	startOK startFailure = iota
	startSubscribeFails
	startFetchFails
	startApplyFails
)

type modelOp struct {
	kind   modelOpKind
	epoch  string
	rev    int
	answer answerKind
	ok     bool // opApply: the window applied it
}

func (op modelOp) String() string {
	at := fmt.Sprintf("%s/%d", op.epoch, op.rev)
	switch op.kind {
	case opEvent:
		return "event " + at
	case opRefresh:
		return "refresh"
	case opResync:
		return "resync"
	case opStop:
		return "stop"
	case opAnswer:
		return [...]string{"answer " + at, "answer empty", "answer invalid", "answer fail"}[op.answer]
	default:
		if op.ok {
			return "apply ok"
		}
		return "apply fail"
	}
}

type modelSeq struct {
	failure startFailure
	start   modelOp // the answer to the first fetch of the Start that succeeds
	ops     []modelOp
}

// genSeq draws a sequence around a source whose revision mostly moves forward and that
// may restart in a new epoch, its revisions starting over.
func genSeq(rng *rand.Rand, n int) modelSeq {
	epochs := rng.IntN(2) == 0
	epoch, gen := "", 1
	if epochs {
		epoch = "e1"
	}
	src := rng.IntN(3)
	seq := modelSeq{start: modelOp{kind: opAnswer, epoch: epoch, rev: src}}
	if rng.IntN(4) == 0 {
		seq.failure = startFailure(1 + rng.IntN(3))
	}
	if rng.IntN(6) == 0 {
		seq.start.answer = answerEmpty
	}
	near := func() int { return max(0, src-3+rng.IntN(5)) } // src-3 .. src+1
	stopAt := -1
	if rng.IntN(4) == 0 {
		stopAt = rng.IntN(n)
	}
	for i := range n {
		if i == stopAt {
			seq.ops = append(seq.ops, modelOp{kind: opStop})
		}
		if rng.IntN(3) == 0 {
			src++
		}
		if epochs && rng.IntN(25) == 0 { // the source restarts: a new epoch, revisions anew
			gen++
			epoch, src = fmt.Sprintf("e%d", gen), rng.IntN(3)
		}
		var op modelOp
		switch p := rng.IntN(100); {
		case p < 40:
			op = modelOp{kind: opEvent, epoch: epoch, rev: max(1, near())}
			if gen > 1 && rng.IntN(8) == 0 { // a late event of the previous epoch
				op.epoch = fmt.Sprintf("e%d", gen-1)
			}
		case p < 44:
			op = modelOp{kind: opRefresh}
		case p < 47:
			op = modelOp{kind: opResync}
		case p < 75:
			op = modelOp{kind: opAnswer, epoch: epoch, rev: near()}
			switch q := rng.IntN(20); {
			case q == 0:
				op.answer = answerEmpty
			case q == 1:
				op.answer = answerInvalid
			case q < 4:
				op.answer = answerFail
			}
		default:
			op = modelOp{kind: opApply, ok: rng.IntN(6) != 0}
		}
		seq.ops = append(seq.ops, op)
	}
	return seq
}

// modelRev is a revision in its epoch.
type modelRev struct {
	epoch string
	rev   int
}

// cause is something that asks for a fetch: a refresh or resync tick (fresh), or an event.
type cause struct {
	fresh bool
	at    modelRev
	step  int
}

// contract is the model's state: only what the contracts speak of.
type contract struct {
	live      bool // started and not stopped
	stopped   bool
	appliedOK bool     // a snapshot was applied since Start: the gate is on
	local     modelRev // what the window holds
	ignored   uint64
	fetches   uint64
	applies   uint64
	highest   map[string]int // per epoch, the highest event revision seen
	// announced is, per epoch, the last step an event or a snapshot of it was seen: an
	// epoch announced after an event supersedes the event's (DESIGN: the source
	// restarted, its revisions started over).
	announced map[string]int
	waiting   []cause   // causes since the last fetch began
	served    []cause   // causes the fetch in flight serves
	offered   *modelRev // the snapshot the last fetch answered, if the gate must judge it
}

func (m *contract) stale(at modelRev) bool {
	return m.appliedOK && at.epoch == m.local.epoch && at.rev <= m.local.rev
}

// covered: localRevision, in the cause's epoch, already reaches what it asked for. A
// fetch needs a cause that is not covered.
func (m *contract) covered(c cause) bool { return !c.fresh && m.stale(c.at) }

// superseded: the window moved to an epoch the source announced after the cause's, so
// the cause's revision means nothing any more. Once idle, the engine owes no fetch to a
// cause that is covered or superseded; it may still make one for a superseded cause,
// since it cannot tell which of two epochs is the newer.
func (m *contract) superseded(c cause) bool {
	if c.fresh || !m.appliedOK || c.at.epoch == m.local.epoch {
		return false
	}
	last, ok := m.announced[m.local.epoch]
	return ok && last > c.step
}

// passes is the revision gate.
func (m *contract) passes(s modelRev) bool {
	return !m.appliedOK || s.epoch != m.local.epoch || s.rev > m.local.rev
}

// modelRun drives one sequence through a real channel and checks it against contract.
type modelRun struct {
	t     *testing.T
	env   *fakeEnv
	c     *Channel
	m     contract
	fetch *fetchCall
	apply *applyCall

	refreshes []*asyncCall
	log       []string
}

func (r *modelRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\nsteps:\n  %s", fmt.Sprintf(format, args...), strings.Join(r.log, "\n  "))
}

func snapOf(s modelRev) Snapshot { return snapEpoch(Revision(fmt.Sprint(s.rev)), s.epoch) }

// failStart makes the first Start fail as f says and checks that it left nothing.
func (r *modelRun) failStart(f startFailure) {
	r.t.Helper()
	var done <-chan error
	switch f {
	case startSubscribeFails:
		r.env.mu.Lock()
		r.env.subscribeErr = errors.New("bus down")
		r.env.mu.Unlock()
		done = startAsync(r.c)
		r.env.expectError(PhaseSubscribe)
		r.env.mu.Lock()
		r.env.subscribeErr = nil
		r.env.mu.Unlock()
	case startFetchFails:
		done = startAsync(r.c)
		r.env.fail(r.env.expectFetch(), errors.New("source down"))
		r.env.expectError(PhaseGetSnapshot)
		r.m.fetches++ // the counters count what the channel did, failed starts included
	case startApplyFails:
		done = startAsync(r.c)
		r.env.answerFetch(snap("7"))
		r.env.ack(r.env.expectApply("7"), errors.New("window busy"))
		r.env.expectError(PhaseApply)
		r.m.fetches++
	}
	if err := receive(r.t, done, "the failing Start to return"); err == nil {
		r.fatalf("start failure %d: Start returned nil, want an error", f)
	}
	r.env.expectNoFetch(r.c)
	r.env.expectNoApply(r.c)
	st := r.c.Status()
	if st.State != StateIdle || st.LocalRevision != ZeroRevision || st.Epoch != "" || r.env.subscribed() {
		r.fatalf("after a failed Start: got state %s, localRevision %s, epoch %q, subscribed %v; want idle, 0, \"\", false",
			st.State, st.LocalRevision, st.Epoch, r.env.subscribed())
	}
}

// start runs the Start that succeeds, answering its fetch with op.
func (r *modelRun) start(op modelOp) {
	r.t.Helper()
	done := startAsync(r.c)
	call := r.env.expectFetch()
	if !call.req.Fresh {
		r.fatalf("Start's fetch: got Fresh false, want true (late-join safety: the source as it is now)")
	}
	r.m.live = true
	r.m.fetches++
	if op.answer == answerEmpty {
		r.env.answer(call, Snapshot{Revision: ZeroRevision})
	} else {
		s := modelRev{op.epoch, op.rev}
		r.env.answer(call, snapOf(s))
		r.env.ack(r.env.expectApply(Revision(fmt.Sprint(s.rev))), nil) // the first snapshot is always applied
		r.m.appliedOK, r.m.local = true, s
		r.m.applies++
		r.m.announced[s.epoch] = -1
	}
	if err := receive(r.t, done, "Start to return"); err != nil {
		r.fatalf("Start: got %v, want nil", err)
	}
	r.log = append(r.log, fmt.Sprintf("start, answered %s", op))
	// Half an interval into the resync period, so that each resync op's full interval
	// crosses exactly one tick.
	time.Sleep(modelResync / 2)
}

func (r *modelRun) step(i int, op modelOp) {
	r.t.Helper()
	m := &r.m
	m.offered = nil
	var wantErr []Phase  // errors the step must report
	var allowErr []Phase // errors it may report
	ignoredBefore := m.ignored
	switch op.kind {
	case opEvent:
		at := modelRev{op.epoch, op.rev}
		r.c.InvalidateRaw(eventEpochOrNot(at))
		switch {
		case !m.live:
		case m.stale(at):
			m.ignored++
		default:
			m.waiting = append(m.waiting, cause{at: at, step: i})
		}
		m.highest[op.epoch] = max(m.highest[op.epoch], op.rev)
		m.announced[op.epoch] = i
	case opRefresh:
		r.refreshes = append(r.refreshes, goRefresh(r.t, r.c))
		if m.live {
			m.waiting = append(m.waiting, cause{fresh: true, step: i})
		}
	case opResync:
		time.Sleep(modelResync) // one tick, in the bubble's time
		synctest.Wait()         // the worker took the tick: it idles or waits in a call
		if m.live {
			m.waiting = append(m.waiting, cause{fresh: true, step: i})
		}
	case opStop:
		r.c.Stop()
		r.fetch, r.apply = nil, nil
		m.live, m.stopped = false, true
		for _, call := range r.refreshes {
			call.wait(r.t, "Refresh at Stop")
		}
	case opAnswer:
		if r.fetch == nil {
			break
		}
		switch op.answer {
		case answerFail:
			r.env.fail(r.fetch, errors.New("source down"))
			wantErr = append(wantErr, PhaseGetSnapshot)
		case answerInvalid:
			r.env.answer(r.fetch, Snapshot{Revision: "01", Data: []byte(`{}`)})
			wantErr = append(wantErr, PhaseProtocol)
		case answerEmpty:
			r.env.answer(r.fetch, Snapshot{Revision: ZeroRevision})
		default:
			s := modelRev{op.epoch, op.rev}
			r.env.answer(r.fetch, snapOf(s))
			m.announced[s.epoch] = i
			if m.passes(s) {
				m.offered = &s
			}
			// A snapshot older than an event it answers is reported; the engine may judge
			// "answers" by any event of the epoch it has seen.
			if s.rev < m.highest[s.epoch] {
				allowErr = append(allowErr, PhaseProtocol)
			}
		}
		r.fetch, m.served = nil, nil
	case opApply:
		if r.apply == nil {
			break
		}
		s := modelRev{r.apply.snapshot.Epoch, revInt(r.apply.snapshot.Revision)}
		if op.ok {
			r.env.ack(r.apply, nil)
			m.appliedOK, m.local = true, s // localRevision advances only after apply succeeded
			m.applies++
		} else {
			r.env.ack(r.apply, errors.New("window busy"))
			wantErr = append(wantErr, PhaseApply)
		}
		r.apply = nil
	}
	r.env.settle(r.c)
	r.log = append(r.log, fmt.Sprintf("%2d %-16s local=%s/%d waiting=%v", i+1, op, m.local.epoch, m.local.rev, m.waiting))
	defer func() {
		switch {
		case r.fetch != nil:
			r.log[len(r.log)-1] += fmt.Sprintf(" → fetch %+v", r.fetch.req)
		case r.apply != nil:
			r.log[len(r.log)-1] += " → apply " + string(r.apply.snapshot.Revision)
		}
	}()

	// What the engine asks for next: only one call at a time.
	var newFetch *fetchCall
	select {
	case newFetch = <-r.env.fetches:
	case call := <-r.env.applies:
		if r.apply != nil || r.fetch != nil {
			r.fatalf("step %d: an apply while a call is pending", i+1)
		}
		r.apply = call
		s := modelRev{call.snapshot.Epoch, revInt(call.snapshot.Revision)}
		if m.offered == nil || *m.offered != s {
			r.fatalf("step %d: got an apply of %s/%d, want none (the gate lets through only snapshots newer than local %s/%d, or of another epoch, or the first since Start)",
				i+1, s.epoch, s.rev, m.local.epoch, m.local.rev)
		}
		m.offered = nil
	default:
	}
	if m.offered != nil {
		r.fatalf("step %d: the snapshot %s/%d passes the gate (local %s/%d) but was not applied", i+1, m.offered.epoch, m.offered.rev, m.local.epoch, m.local.rev)
	}
	if newFetch != nil {
		if !m.live || r.fetch != nil || r.apply != nil {
			r.fatalf("step %d: a fetch while live=%v, fetch pending %v, apply pending %v", i+1, m.live, r.fetch != nil, r.apply != nil)
		}
		if !slices.ContainsFunc(m.waiting, func(c cause) bool { return !m.covered(c) }) {
			r.fatalf("step %d: a fetch (%+v) with no cause since the last one began that local %s/%d does not cover: %v",
				i+1, newFetch.req, m.local.epoch, m.local.rev, m.waiting)
		}
		r.fetch, m.served, m.waiting = newFetch, m.waiting, nil
		m.fetches++
	}
	select {
	case call := <-r.env.fetches:
		r.fatalf("step %d: a second fetch %+v while one is pending", i+1, call.req)
	case call := <-r.env.applies:
		r.fatalf("step %d: an apply of %s alongside another call", i+1, call.snapshot.Revision)
	default:
	}

	// Liveness: idle means every cause was served or is covered, and Refresh returned.
	if r.fetch == nil && r.apply == nil && m.live {
		for _, c := range m.waiting {
			if !m.covered(c) && !m.superseded(c) {
				r.fatalf("step %d: idle, but %+v (from step %d) was never served by a fetch begun after it and local %s/%d does not cover it",
					i+1, c, c.step+1, m.local.epoch, m.local.rev)
			}
		}
		m.waiting = nil
		for _, call := range r.refreshes {
			call.wait(r.t, fmt.Sprintf("step %d: Refresh, the engine being idle", i+1))
		}
	}

	// Errors: those the step must report, and no others but those it may.
	var got []Phase
	for drained := false; !drained; {
		select {
		case serr := <-r.env.errs:
			got = append(got, serr.Phase)
		default:
			drained = true
		}
	}
	for _, p := range wantErr {
		if k := slices.Index(got, p); k >= 0 {
			got = slices.Delete(got, k, k+1)
		} else if !m.stopped {
			r.fatalf("step %d: errors %v, want one of phase %s", i+1, got, p)
		}
	}
	for _, p := range got {
		if !slices.Contains(allowErr, p) {
			r.fatalf("step %d: unexpected error of phase %s (allowed: %v)", i+1, p, allowErr)
		}
	}

	// Observable state and call counts.
	st := r.c.Status()
	want := Status{Topic: testTopic, Channel: "w1", State: StateRunning, LocalRevision: Revision(fmt.Sprint(m.local.rev)), Epoch: m.local.epoch,
		Counters: Counters{Refreshes: m.fetches, Applies: m.applies, IgnoredEvents: m.ignored, Errors: st.Counters.Errors}}
	if m.stopped {
		want.State = StateStopped
	}
	if st != want {
		r.fatalf("step %d: status got %+v, want %+v (ignored this step: %d)", i+1, st, want, m.ignored-ignoredBefore)
	}
}

func eventEpochOrNot(at modelRev) []byte {
	if at.epoch == "" {
		return event(Revision(fmt.Sprint(at.rev)))
	}
	return eventEpoch(Revision(fmt.Sprint(at.rev)), at.epoch)
}

func runModel(t *testing.T, seq modelSeq) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv(t)
		c := env.channel(func(cfg *Config) { cfg.ResyncInterval = modelResync })
		r := &modelRun{t: t, env: env, c: c, m: contract{highest: map[string]int{}, announced: map[string]int{}}}
		if seq.failure != startOK {
			r.failStart(seq.failure)
		}
		r.start(seq.start)
		for i, op := range seq.ops {
			r.step(i, op)
		}
		// The final stop: nothing follows it.
		local := c.LocalRevision()
		c.Stop()
		for _, call := range r.refreshes {
			call.wait(t, "Refresh at Stop")
		}
		c.InvalidateRaw(event("1000"))
		if err := c.Refresh(t.Context()); !errors.Is(err, ErrStopped) {
			r.fatalf("Refresh after Stop: got %v, want ErrStopped", err)
		}
		time.Sleep(2 * modelResync)
		require.Empty(t, env.applies, "an apply after Stop")
		require.Empty(t, env.fetches, "a fetch after Stop")
		require.Equal(t, local, c.LocalRevision(), "localRevision after Stop")
		require.Equal(t, int(r.m.fetches), env.fetchTotal(), "getSnapshot calls")
	})
}

func revInt(r Revision) int {
	var n int
	fmt.Sscan(string(r), &n)
	return n
}

func TestEngineMatchesReferenceModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with: go test ./engine -run TestEngineMatchesReferenceModel -model.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	runs := *modelRuns
	if testing.Short() {
		runs = min(runs, 30)
	}
	for i := range runs {
		seq := genSeq(rng, 10+rng.IntN(60))
		if !t.Run(fmt.Sprintf("sequence %d", i), func(t *testing.T) { runModel(t, seq) }) {
			t.Fatalf("seed %d, sequence %d failed (start failure %d, start %s)", seed, i, seq.failure, seq.start)
		}
	}
}
