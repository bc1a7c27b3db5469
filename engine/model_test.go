package engine

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The reference model (in the style of x/sync's syncmap quick.CheckEqual tests): random
// sequences of events (in and out of order, duplicates), refreshes, snapshot answers
// (newer, older, empty, malformed, failed) and apply results are run through a few lines
// of serial code that state the lifecycle rules, and through the real engine, driven
// step by step through the fakes' gates. After every step both must agree on what the
// engine is waiting for (a fetch, and what it asks for; an apply, and of what), which
// errors were reported, and the local revision. Then both are stopped.

var (
	modelSeed = flag.Uint64("model.seed", 0, "seed of TestEngineMatchesReferenceModel (0: from the clock)")
	modelRuns = flag.Int("model.runs", 300, "sequences TestEngineMatchesReferenceModel checks")
)

type modelOpKind int

const (
	opEvent   modelOpKind = iota // an invalidation of revision rev
	opRefresh                    // an explicit Refresh
	opAnswer                     // answer the pending fetch (no-op if none)
	opApply                      // answer the pending apply (no-op if none)
)

type answerKind int

const (
	answerSnapshot answerKind = iota // {revision: rev, data}
	answerEmpty                      // {revision: "0"}: the source has no state
	answerInvalid                    // a non-canonical revision
	answerFail                       // the provider fails
)

type modelOp struct {
	kind   modelOpKind
	rev    int
	answer answerKind
	ok     bool // opApply: the window applied it
}

func (op modelOp) String() string {
	switch op.kind {
	case opEvent:
		return fmt.Sprintf("event %d", op.rev)
	case opRefresh:
		return "refresh"
	case opAnswer:
		return [...]string{fmt.Sprintf("answer %d", op.rev), "answer empty", "answer invalid", "answer fail"}[op.answer]
	default:
		if op.ok {
			return "apply ok"
		}
		return "apply fail"
	}
}

// modelStep is what is observable after one op.
type modelStep struct {
	Op      string
	Waiting string // "idle", "fetch min=7 fresh=false", "apply 7"
	Errors  []Phase
	Local   Revision
}

// genOps draws a sequence around a source revision that mostly moves forward.
func genOps(rng *rand.Rand, n int) (start modelOp, ops []modelOp) {
	src := rng.IntN(3)
	start = modelOp{kind: opAnswer, rev: src}
	if rng.IntN(5) == 0 {
		start.answer = answerEmpty
	}
	near := func() int { return max(0, src-3+rng.IntN(5)) } // src-3 .. src+1
	for range n {
		if rng.IntN(3) == 0 {
			src++
		}
		var op modelOp
		switch p := rng.IntN(100); {
		case p < 40:
			op = modelOp{kind: opEvent, rev: max(1, near())}
		case p < 45:
			op = modelOp{kind: opRefresh}
		case p < 75:
			op = modelOp{kind: opAnswer, rev: near()}
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
		ops = append(ops, op)
	}
	return start, ops
}

// refModel is the lifecycle contract as serial code. -1 means "none".
type refModel struct {
	local     int  // last revision applied since start
	applied   bool // something was applied since start: the gate is on
	announced int  // highest revision of an accepted event

	state    string // "idle", "fetch", "apply"
	runMin   int    // what the run in flight was asked to reach
	runFresh bool
	applying int
	dirty    bool // an event arrived since the run in flight began
	fresh    bool // a refresh asked for a run that starts after it

	errs []Phase
}

func newRefModel(start modelOp) *refModel {
	m := &refModel{local: 0, announced: -1, state: "idle", runMin: -1}
	if start.answer != answerEmpty { // the first snapshot after start is always applied
		m.local, m.applied = start.rev, true
	}
	return m
}

func (m *refModel) step(op modelOp) modelStep {
	m.errs = nil
	switch op.kind {
	case opEvent:
		if m.applied && op.rev <= m.local {
			break // stale, duplicate or self-echo: ignored
		}
		m.announced = max(m.announced, op.rev)
		m.dirty = true // coalesced: at most one run after the one in flight
		if m.state == "idle" {
			m.startRun()
		}
	case opRefresh:
		m.fresh = true
		if m.state == "idle" {
			m.startRun()
		}
	case opAnswer:
		if m.state != "fetch" {
			break
		}
		switch op.answer {
		case answerFail:
			m.errs = append(m.errs, PhaseGetSnapshot)
			m.endRun()
		case answerInvalid:
			m.errs = append(m.errs, PhaseProtocol)
			m.endRun()
		case answerEmpty:
			m.endRun() // nothing to apply
		case answerSnapshot:
			older := m.runMin != -1 && op.rev < m.runMin // older than the event it was fetched for
			if older {
				m.errs = append(m.errs, PhaseProtocol)
			}
			if m.applied && op.rev <= m.local { // the revision gate
				m.endRun()
				break
			}
			m.state, m.applying = "apply", op.rev
		}
	case opApply:
		if m.state != "apply" {
			break
		}
		if op.ok {
			m.local, m.applied = m.applying, true // local advances only after apply succeeded
		} else {
			m.errs = append(m.errs, PhaseApply)
		}
		m.endRun()
	}
	return m.observe(op)
}

func (m *refModel) startRun() {
	m.state, m.runMin, m.runFresh = "fetch", m.announced, m.fresh
	m.dirty, m.fresh = false, false
}

func (m *refModel) endRun() {
	if m.dirty && m.applied && m.announced <= m.local {
		m.dirty = false // the trailing run is skipped: local covers every event announced
	}
	if m.dirty || m.fresh {
		m.startRun()
		return
	}
	m.state, m.runMin = "idle", -1
}

func (m *refModel) observe(op modelOp) modelStep {
	s := modelStep{Op: op.String(), Waiting: "idle", Errors: m.errs, Local: Revision(fmt.Sprint(m.local))}
	switch m.state {
	case "fetch":
		s.Waiting = fmt.Sprintf("fetch min=%s fresh=%v", minString(m.runMin), m.runFresh)
	case "apply":
		s.Waiting = fmt.Sprintf("apply %d", m.applying)
	}
	return s
}

func minString(rev int) string {
	if rev < 0 {
		return `""`
	}
	return fmt.Sprint(rev)
}

// runEngine drives a real Channel through the same ops and observes it the same way.
func runEngine(t *testing.T, start modelOp, ops []modelOp) []modelStep {
	env := newFakeEnv(t)
	c := env.channel(nil)
	var fetch *fetchCall
	var apply *applyCall

	done := startAsync(c)
	if start.answer == answerEmpty {
		env.answerFetch(Snapshot{Revision: ZeroRevision})
	} else {
		env.answerFetch(snap(Revision(fmt.Sprint(start.rev))))
		env.ack(env.expectApply(Revision(fmt.Sprint(start.rev))), nil)
	}
	require.NoError(t, receive(t, done, "Start to return"))

	var refreshes []*asyncCall
	var steps []modelStep
	for _, op := range ops {
		switch op.kind {
		case opEvent:
			c.InvalidateRaw(event(Revision(fmt.Sprint(op.rev))))
		case opRefresh:
			refreshes = append(refreshes, goRefresh(t, c))
		case opAnswer:
			if fetch == nil {
				break
			}
			switch op.answer {
			case answerFail:
				env.fail(fetch, errors.New("source down"))
			case answerInvalid:
				env.answer(fetch, Snapshot{Revision: "01", Data: []byte(`{}`)})
			case answerEmpty:
				env.answer(fetch, Snapshot{Revision: ZeroRevision})
			default:
				env.answer(fetch, snap(Revision(fmt.Sprint(op.rev))))
			}
			fetch = nil
		case opApply:
			if apply == nil {
				break
			}
			var err error
			if !op.ok {
				err = errors.New("window busy")
			}
			env.ack(apply, err)
			apply = nil
		}
		env.settle(c)
		select {
		case fetch = <-env.fetches:
		case apply = <-env.applies:
		default:
		}
		s := modelStep{Op: op.String(), Waiting: "idle", Local: c.LocalRevision()}
		switch {
		case fetch != nil:
			s.Waiting = fmt.Sprintf("fetch min=%s fresh=%v", minString(revInt(fetch.req.MinRevision)), fetch.req.Fresh)
		case apply != nil:
			s.Waiting = fmt.Sprintf("apply %s", apply.snapshot.Revision)
		}
		for drained := false; !drained; {
			select {
			case serr := <-env.errs:
				s.Errors = append(s.Errors, serr.Phase)
			default:
				drained = true
			}
		}
		steps = append(steps, s)
	}

	// The final stop: it cancels what is in flight, and nothing follows.
	c.Stop()
	for _, r := range refreshes {
		r.wait(t, "Refresh at Stop")
	}
	c.InvalidateRaw(event("1000"))
	require.Empty(t, env.applies, "an apply after Stop")
	require.Empty(t, env.fetches, "a fetch after Stop")
	return steps
}

func revInt(r Revision) int {
	if r == "" {
		return -1
	}
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
		start, ops := genOps(rng, 10+rng.IntN(60))
		m := newRefModel(start)
		var want []modelStep
		for _, op := range ops {
			want = append(want, m.step(op))
		}
		var got []modelStep
		ok := t.Run(fmt.Sprintf("sequence %d", i), func(t *testing.T) {
			got = runEngine(t, start, ops)
		})
		require.True(t, ok, "seed %d, sequence %d: the engine run failed", seed, i)
		if diff := firstDifference(want, got); diff >= 0 {
			t.Fatalf("seed %d, sequence %d: engine and model disagree at step %d\nstart: %s\n%s",
				seed, i, diff+1, start, describeSteps(want, got, diff))
		}
	}
}

func firstDifference(want, got []modelStep) int {
	for i := range max(len(want), len(got)) {
		if i >= len(want) || i >= len(got) || fmt.Sprint(want[i]) != fmt.Sprint(got[i]) {
			return i
		}
	}
	return -1
}

func describeSteps(want, got []modelStep, upTo int) string {
	var b strings.Builder
	for i := 0; i <= upTo && i < max(len(want), len(got)); i++ {
		var w, g modelStep
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		mark := "  "
		if i == upTo {
			mark = "=>"
		}
		fmt.Fprintf(&b, "%s %2d %-14s model: %-28s errs=%v local=%s\n", mark, i+1, w.Op, w.Waiting, w.Errors, w.Local)
		fmt.Fprintf(&b, "   %2d %-14s got:   %-28s errs=%v local=%s\n", i+1, g.Op, g.Waiting, g.Errors, g.Local)
	}
	return b.String()
}
