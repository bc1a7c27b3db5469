package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/internal/chaos"

	"github.com/state-sync/state-sync/sidecar"
)

// TestChaos is the chaos property test over the real binary (engine/chaos_test.go is the
// faster in-process variant). A seeded host drives the sidecar over its pipes, mixing for
// a bounded number of events and seconds: channels of host-, channel- and store-sourced
// topics opening and closing at random; bursts of invalidations that the host drops,
// duplicates, reorders and delays; getSnapshot answers that are slow, fail, time out
// (--call-timeout is short), are stale or malformed; apply answers that fail, are slow
// or time out; epoch changes; store writes (some compare-and-set); refreshes; garbage
// lines and garbage params.
//
// Invariants, checked on every run:
//   - per channel, the applies that counted (answered with a result, in time: the
//     sidecar reports every call it gave up on, but for the one its channel.close
//     cancelled) strictly increase in revision within one epoch, checked in the order
//     the frames crossed the pipes; no channel ever has two applies in flight; and every
//     apply's data belongs to its topic, epoch and revision;
//   - no apply request for a channel is read after its channel.close answer (checked in
//     the order the frames came off the pipe);
//   - once the chaos stops, one final invalidation per topic (per channel for
//     channel-sourced topics, a write that wins for store topics), sent without waiting
//     for the sidecar to go idle, brings every open channel to its topic's final
//     revision, and channel.list agrees;
//   - getSnapshot calls of a host topic stay within 2 per burst, plus one per fresh
//     request (open, refresh) and one per injected fault that can cost one: never
//     channels × events;
//   - no internal error (-32603) is ever answered; the process never dies, and exits 0
//     when its stdin closes at the end;
//   - after every channel closed, channel.list is empty and the resident memory (from
//     /proc) is back near its level after a warm-up round.
//
// CHAOS_SEED replays the host's random choices; CHAOS_EVENTS and CHAOS_DURATION scale the
// run (whichever comes first); CHAOS_PLAIN=1 runs the binary built without -race, whose
// memory is the one users get; CHAOS_DELTAS=1 turns deltas on (see chaos_deltas_test.go,
// and TestChaosDeltas, its short run). task soak runs it long.
func TestChaos(t *testing.T) {
	runChaos(t, chaos.SettingsFromEnv(t, 5000, 10, 25*time.Second), chaosDeltasFromEnv())
}

func runChaos(t *testing.T, settings chaos.Settings, deltas bool) {
	t.Logf("chaos seed %d (replay with CHAOS_SEED=%d), up to %d events or %s, deltas %v", settings.Seed, settings.Seed, settings.Events, settings.Duration, deltas)
	h := newChaosHost(t, settings)
	h.deltas = deltas
	h.start()

	// Warm-up: a tenth of the events, then every channel closed; the memory after it is
	// the baseline the end is compared with.
	h.run(settings.Events/10, settings.Duration/10)
	h.quiesce()
	h.closeAll()
	warmRSS := h.rss()

	h.run(settings.Events-settings.Events/10, settings.Duration)
	h.quiesce()
	h.converge()
	if deltas {
		h.checkDeltaCounters()
	}
	h.checkFetchBound()
	h.closeAll()
	endRSS := h.rss()
	h.checkMemory(warmRSS, endRSS)
	h.exit()
	h.report(warmRSS, endRSS)
}

const (
	chaosCallTimeout = 250 * time.Millisecond // short, yet rarely missed by a healthy -race host
	chaosMaxOpen     = 40
	chaosMaxChannels = 64 // --max-channels, above chaosMaxOpen: the limit is tested in faults_test.go
	chaosMaxDelayed  = 128
	chaosWaitBound   = 30 * time.Second // a failure bound; nothing waits this long when all is well
)

type chaosTopic struct {
	name   string
	source string // host, channel, store

	// guarded by chaosHost.mu
	epoch     string
	rev       uint64
	bursts    int
	fresh     int
	faulty    int
	lateEpoch int
	fetches   int
	events    int
	storeData map[uint64]string // store topics: data written at each revision
	// storeCounts: store topics with deltas on, the keys' counts of the data written at
	// each revision, which the next write changes by one or two.
	storeCounts map[uint64][]int
}

type chaosChan struct {
	name  string
	topic *chaosTopic
	// With deltas on: whether it opened with options.deltas, and its options.paths (nil:
	// the whole document).
	deltasOn bool
	paths    []string
	// guarded by chaosHost.mu: the last projection the host computed, and of what.
	projOf, proj string

	// guarded by chaosHost.mu
	state  string        // opening, open, failed, closing, closed
	opened chan struct{} // closed when the channel.open answer arrived
	openOK bool
	closed bool // its channel.close answer was read
	// What the host acknowledged last (the gate of converge).
	hasLast   bool
	lastEpoch string
	lastRev   uint64
	lastData  string
	// The sidecar's view, settled in frame order: an apply counts once the host answered
	// it with a result and no timeout of it was reported.
	unsettled    *chaosApplyRec // the channel's latest apply request, not settled yet
	settled      bool
	settledEpoch string
	settledRev   uint64
	lastCounted  bool // the latest apply settled counted (a failed one makes the next full)
	// rejected is its last apply answered -32011, until the next apply is read: that one
	// must carry full data.
	rejected *chaosApplyRec
	// The settled applies that were deltas and counted, and -32011 answers the sidecar
	// read in time: what channel.status must count (deltas, deltaRejections).
	deltasCounted, rejections int
}

// chaosApplyRec is one apply request as it crossed the pipes.
type chaosApplyRec struct {
	id       string
	cc       *chaosChan
	epoch    string
	rev      uint64
	delta    bool  // it carried a patch
	answered bool  // the host wrote its answer
	ok       bool  // and it was a result
	code     int64 // or this error code
	timedOut bool  // the sidecar reported it gave up on the call
	// cancelled: its channel's close was answered while it was unanswered and not timed
	// out. The close cancelled it, unreported (docs/lifecycle.md, Stop quiescence), and
	// the host's late answer may never be written: at exit its handler's ctx ends first.
	cancelled bool
}

type chaosHost struct {
	t        *testing.T
	settings chaos.Settings
	plain    bool // CHAOS_PLAIN: the binary built without -race
	deltas   bool // CHAOS_DELTAS, TestChaosDeltas: channels open with deltas and paths
	// historyBytes is the --delta-history-bytes the run drew (0: the default).
	historyBytes int
	driver       *rand.Rand
	healed       atomic.Bool
	c            *sidecar.Client

	calls sync.WaitGroup // requests the driver made on other goroutines
	bus   sync.WaitGroup // delayed invalidations

	mu         sync.Mutex
	faultRand  *rand.Rand
	topics     []*chaosTopic
	chans      map[string]*chaosChan
	order      []*chaosChan
	closeIDs   map[string]string         // id of a channel.close request → channel
	applyIDs   map[string]*chaosApplyRec // id of an unanswered apply request → it
	held       []heldEvent
	delayed    int
	faults     map[string]int
	errs       map[string]int
	counts     map[string]int
	codes      map[int64]int
	violations []string
	changed    chan struct{}
	events     int
	elapsed    time.Duration
	cutByTime  bool
	nextChan   int
	nextWrite  int
}

type heldEvent struct {
	params map[string]any
}

func newChaosHost(t *testing.T, s chaos.Settings) *chaosHost {
	h := &chaosHost{
		t: t, settings: s,
		driver:    rand.New(rand.NewPCG(s.Seed, 0x5eed)),
		faultRand: rand.New(rand.NewPCG(s.Seed, 0xfa17)),
		plain:     os.Getenv("CHAOS_PLAIN") != "",
		chans:     map[string]*chaosChan{}, closeIDs: map[string]string{}, applyIDs: map[string]*chaosApplyRec{},
		faults: map[string]int{}, errs: map[string]int{}, counts: map[string]int{}, codes: map[int64]int{},
		changed: make(chan struct{}),
	}
	for i, source := range []string{"host", "host", "channel", "channel", "store", "store"} {
		tp := &chaosTopic{name: fmt.Sprintf("%s-%d", source, i), source: source, epoch: "e0", storeData: map[uint64]string{}, storeCounts: map[uint64][]int{}}
		if source != "store" {
			tp.rev = 1
		}
		h.topics = append(h.topics, tp)
	}
	return h
}

func (h *chaosHost) start() {
	path := binary
	if h.plain {
		path = plainBinary(h.t) // no -race: the memory figures are the ones users get
	}
	args := []string{"--call-timeout", chaosCallTimeout.String(), "--max-channels", strconv.Itoa(chaosMaxChannels)}
	if h.deltas {
		args = append(args, h.deltaArgs(path)...)
	}
	c, err := sidecar.Start(context.Background(), sidecar.Options{
		Path:    path,
		Args:    args,
		Handler: h, Stderr: os.Stderr, Record: chaosRecorder{h},
	})
	require.NoError(h.t, err)
	h.c = c
	h.t.Cleanup(func() {
		select {
		case <-c.Exited():
		default:
			c.Kill()
		}
	})
	var init struct {
		ProtocolVersion string `json:"protocolVersion"`
		Capabilities    struct {
			Deltas json.RawMessage `json:"deltas"`
		} `json:"capabilities"`
	}
	require.NoError(h.t, c.Call(h.ctx(), "initialize", map[string]any{"protocolVersion": "1", "client": map[string]string{"name": "chaos"}}, &init))
	require.Equal(h.t, "1", init.ProtocolVersion)
	if h.deltas {
		h.checkDeltaCapability(init.Capabilities.Deltas)
	}
}

func (h *chaosHost) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), chaosWaitBound)
	h.t.Cleanup(cancel)
	return ctx
}

func (h *chaosHost) violationLocked(format string, args ...any) {
	h.counts["violations"]++
	if len(h.violations) < 30 {
		h.violations = append(h.violations, fmt.Sprintf(format, args...))
	}
}

func (h *chaosHost) violation(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.violationLocked(format, args...)
}

func (h *chaosHost) signalLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func chaosData(topic, epoch string, rev uint64) string {
	return fmt.Sprintf(`{"topic":%q,"epoch":%q,"revision":"%d"}`, topic, epoch, rev)
}

func (h *chaosHost) pickLocked(kinds []string, weights []int) string {
	if h.healed.Load() {
		return "ok"
	}
	return chaos.Pick(h.faultRand, kinds, weights)
}

var (
	chaosFetchFaults  = []string{"ok", "slow", "fail", "timeout", "stale", "malformed"}
	chaosFetchWeights = []int{62, 14, 9, 3, 8, 4}
	chaosApplyFaults  = []string{"ok", "slow", "fail", "timeout"}
	chaosApplyWeights = []int{84, 6, 8, 2}
)

// HandleRequest answers getSnapshot and apply, with faults.
func (h *chaosHost) HandleRequest(ctx context.Context, method string, params json.RawMessage) (any, error) {
	switch method {
	case "getSnapshot":
		return h.getSnapshot(ctx, params)
	case "apply":
		return h.apply(ctx, params)
	}
	h.violation("the sidecar sent an unexpected request %q", method)
	return nil, &sidecar.RPCError{Code: -32601, Message: "unexpected"}
}

// lateAnswer waits past the sidecar's call timeout: the answer that follows is dropped.
func lateAnswer(ctx context.Context) {
	t := time.NewTimer(chaosCallTimeout + 50*time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (h *chaosHost) getSnapshot(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Topic   string `json:"topic"`
		Channel string `json:"channel"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		h.violation("getSnapshot params %s: %v", raw, err)
		return nil, err
	}
	h.mu.Lock()
	var tp *chaosTopic
	for _, x := range h.topics {
		if x.name == p.Topic {
			tp = x
		}
	}
	if tp == nil || tp.source == "store" || (tp.source == "host") != (p.Channel == "") {
		h.violationLocked("getSnapshot %s: not a host topic asked without channel, nor a channel topic asked with one", raw)
		h.mu.Unlock()
		return nil, &sidecar.RPCError{Code: -32602, Message: "unexpected getSnapshot"}
	}
	tp.fetches++
	epoch, rev := tp.epoch, tp.rev
	fault := h.pickLocked(chaosFetchFaults, chaosFetchWeights)
	if fault == "stale" && rev <= 1 {
		fault = "ok"
	}
	var staleBy uint64
	if fault == "stale" {
		staleBy = 1 + h.faultRand.Uint64N(min(rev-1, 3))
	}
	delay := time.Duration(h.faultRand.IntN(10)+1) * time.Millisecond
	if fault != "ok" {
		h.faults["getSnapshot "+fault]++
		if fault != "slow" {
			tp.faulty++
		}
	}
	h.mu.Unlock()

	switch fault {
	case "slow":
		chaos.Wait(ctx, delay)
		h.mu.Lock()
		if tp.epoch != epoch {
			h.faults["getSnapshot slow across an epoch change"]++
			tp.faulty++
		}
		h.mu.Unlock()
	case "fail":
		return nil, &sidecar.RPCError{Code: -32050, Message: "chaos: the source failed"}
	case "timeout":
		lateAnswer(ctx)
		return nil, &sidecar.RPCError{Code: -32050, Message: "chaos: too late"}
	case "stale":
		rev -= staleBy
	case "malformed":
		return map[string]any{"revision": "007", "data": "garbage"}, nil
	}
	data := chaosData(tp.name, epoch, rev)
	if h.deltas {
		data = chaosRevDoc(tp.name, epoch, rev)
	}
	return map[string]any{"revision": strconv.FormatUint(rev, 10), "epoch": epoch, "data": json.RawMessage(data)}, nil
}

func (h *chaosHost) apply(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Channel      string          `json:"channel"`
		Topic        string          `json:"topic"`
		Revision     string          `json:"revision"`
		Epoch        string          `json:"epoch"`
		Data         json.RawMessage `json:"data"`
		BaseRevision string          `json:"baseRevision"`
		Patch        json.RawMessage `json:"patch"` // a delta (chaos_deltas_test.go)
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		h.violation("apply params %s: %v", raw, err)
		return nil, err
	}
	rev, err := strconv.ParseUint(p.Revision, 10, 64)
	delta := p.Patch != nil
	var base uint64
	badDelta := false
	h.mu.Lock()
	cc := h.chans[p.Channel]
	switch {
	case err != nil:
		h.violationLocked("apply %s: revision %q: %v", p.Channel, p.Revision, err)
	case cc == nil:
		h.violationLocked("apply for channel %q, which the host never opened", p.Channel)
	case cc.topic.name != p.Topic:
		h.violationLocked("apply for %s names topic %q, want %q", p.Channel, p.Topic, cc.topic.name)
	case delta:
		var berr error
		base, berr = strconv.ParseUint(p.BaseRevision, 10, 64)
		switch {
		case !cc.deltasOn:
			h.violationLocked("apply %s revision %d: a delta, but the channel did not open with options.deltas", p.Channel, rev)
			badDelta = true
		case berr != nil || base >= rev:
			h.violationLocked("apply %s revision %d: baseRevision %q, want a revision below it", p.Channel, rev, p.BaseRevision)
			badDelta = true
		case p.Data != nil:
			h.violationLocked("apply %s revision %d: both data and patch", p.Channel, rev)
			badDelta = true
		}
	default:
		h.checkDataLocked(cc, p.Epoch, rev, string(p.Data), false)
	}
	if cc == nil || err != nil || badDelta {
		h.mu.Unlock()
		return nil, &sidecar.RPCError{Code: -32602, Message: "unexpected apply"}
	}
	fault := h.pickLocked(chaosApplyFaults, chaosApplyWeights)
	delay := time.Duration(h.faultRand.IntN(5)+1) * time.Millisecond
	if fault != "ok" {
		h.faults["apply "+fault]++
	}
	if delta {
		h.counts["applies delta"]++
		if fault == "ok" && !h.healed.Load() && h.faultRand.IntN(deltaRejectOneInN) == 0 {
			// The re-send path, on purpose: the sidecar must send this revision in full.
			h.counts["deltas rejected on purpose"]++
			h.mu.Unlock()
			return nil, deltaRejected("baseMismatch", "", "chaos: delta rejected on purpose")
		}
	} else {
		h.counts["applies full"]++
	}
	h.mu.Unlock()

	switch fault {
	case "slow":
		chaos.Wait(ctx, delay)
	case "fail":
		return nil, &sidecar.RPCError{Code: -32051, Message: "chaos: the window could not apply"}
	case "timeout":
		lateAnswer(ctx)
		return nil, &sidecar.RPCError{Code: -32051, Message: "chaos: too late"}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	data := string(p.Data)
	if delta {
		// Under the lock, on what the window holds now: a slow apply of this channel the
		// sidecar gave up on may have landed since the delta was sent.
		if data, err = h.applyDeltaLocked(cc, p.Epoch, rev, base, p.Patch); err != nil {
			return nil, err
		}
		h.checkDataLocked(cc, p.Epoch, rev, data, true)
		h.counts["deltas taken"]++
		h.counts["delta patch bytes"] += len(p.Patch)
		h.counts["delta data bytes"] += len(data)
	}
	cc.hasLast, cc.lastEpoch, cc.lastRev, cc.lastData = true, p.Epoch, rev, data
	h.counts["applies acknowledged"]++
	h.signalLocked()
	return map[string]bool{"ok": true}, nil
}

// checkDataLocked checks that data, which channel cc is to hold at (epoch, rev), is its
// topic's data there (or its projection): byte for byte when the sidecar passes it on
// whole, as canonical JSON when it built it (a patch the host applied, a projection).
func (h *chaosHost) checkDataLocked(cc *chaosChan, epoch string, rev uint64, data string, patched bool) {
	if cc.topic.source == "store" && cc.paths == nil {
		var d struct {
			Topic string `json:"topic"`
		}
		if json.Unmarshal([]byte(data), &d) != nil || d.Topic != cc.topic.name {
			h.violationLocked("apply %s revision %d: data %.300s is not a write of topic %s", cc.name, rev, data, cc.topic.name)
		}
	}
	want, ok := h.wantDataLocked(cc, epoch, rev)
	if !ok {
		return // a store write whose answer the host has not read yet
	}
	// A store topic's data after a state.patch is the sidecar's encoding, not the host's.
	if patched || cc.paths != nil || (h.deltas && cc.topic.source == "store") {
		if !sameJSON([]byte(data), []byte(want)) {
			h.violationLocked("apply %s revision %d epoch %q (patched: %v, paths %v): data %.300s, want %.300s", cc.name, rev, epoch, patched, cc.paths, data, want)
		}
		return
	}
	if data != want {
		h.violationLocked("apply %s revision %d epoch %q: data %.300s, want %.300s", cc.name, rev, epoch, data, want)
	}
}

// settleLocked decides whether an apply counted for the sidecar and checks that the ones
// that did strictly increase within an epoch. It runs when the channel's next apply is
// read (the engine sends one at a time, and reports a timeout before trying again), and
// for the last one once the sidecar has exited.
func (h *chaosHost) settleLocked(cc *chaosChan) {
	rec := cc.unsettled
	if rec == nil {
		return
	}
	cc.unsettled = nil
	cc.lastCounted = false
	delete(h.applyIDs, rec.id)
	if rec.answered && rec.code == -32011 && !rec.timedOut && !rec.cancelled {
		cc.rejections++
	}
	if !rec.answered && !rec.timedOut && !rec.cancelled {
		h.violationLocked("%s: apply of revision %d was neither answered, nor reported timed out, nor cancelled by its channel's close when the next one came or the sidecar exited: two applies in flight, or one lost", cc.name, rec.rev)
		return
	}
	if !rec.ok || rec.timedOut || rec.cancelled {
		return
	}
	if cc.settled && cc.settledEpoch == rec.epoch && rec.rev <= cc.settledRev {
		h.violationLocked("%s (%s): applied revision %d after %d in epoch %q: want strictly increasing", cc.name, cc.topic.name, rec.rev, cc.settledRev, rec.epoch)
	}
	cc.settled, cc.settledEpoch, cc.settledRev, cc.lastCounted = true, rec.epoch, rec.rev, true
	if rec.delta {
		cc.deltasCounted++
	}
	h.counts["applies counted"]++
}

// HandleNotification counts error notifications and marks an apply the sidecar gave up
// on (the window's answer came too late, or never): it does not count.
func (h *chaosHost) HandleNotification(method string, params json.RawMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if method == "$error" {
		h.errs["answer to a garbage frame"]++
		return
	}
	if method != "error" {
		h.violationLocked("unexpected notification %q", method)
		return
	}
	var p struct {
		Phase   string `json:"phase"`
		Channel string `json:"channel"`
		Error   struct {
			Message string `json:"message"`
		} `json:"error"`
		SnapshotRevision string `json:"snapshotRevision"`
	}
	if err := json.Unmarshal(params, &p); err != nil || p.Phase == "" || p.Error.Message == "" {
		h.violationLocked("error notification without phase or message: %s", params)
		return
	}
	h.errs[p.Phase]++
	if p.Phase != "apply" || !strings.Contains(p.Error.Message, "did not answer apply") {
		return
	}
	cc := h.chans[p.Channel]
	rev, err := strconv.ParseUint(p.SnapshotRevision, 10, 64)
	if cc == nil || err != nil {
		return
	}
	h.counts["apply timeouts"]++
	if cc.unsettled != nil && cc.unsettled.rev == rev {
		cc.unsettled.timedOut = true
	}
}

// chaosRecorder sees every frame in the order it crossed the pipe: the place to check
// that no apply follows a channel.close answer.
type chaosRecorder struct{ h *chaosHost }

func (r chaosRecorder) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	dir, frame, ok := strings.Cut(line, " ")
	if !ok {
		return len(p), nil
	}
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Channel      string          `json:"channel"`
			Revision     string          `json:"revision"`
			Epoch        string          `json:"epoch"`
			BaseRevision string          `json:"baseRevision"`
			Patch        json.RawMessage `json:"patch"`
		} `json:"params"`
		Error *struct {
			Code int64 `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(frame), &msg) != nil {
		return len(p), nil // a garbage line the chaos wrote on purpose
	}
	h := r.h
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case dir == "->" && msg.Method == "channel.close":
		h.closeIDs[string(msg.ID)] = msg.Params.Channel
	case dir == "<-" && msg.Method == "" && len(msg.ID) > 0:
		if msg.Error != nil {
			h.codes[msg.Error.Code]++
			if msg.Error.Code == -32603 {
				h.violationLocked("the sidecar answered an internal error: %s", frame)
			}
		}
		if name, ok := h.closeIDs[string(msg.ID)]; ok {
			delete(h.closeIDs, string(msg.ID))
			if cc := h.chans[name]; cc != nil && msg.Error == nil {
				cc.closed = true
				if rec := cc.unsettled; rec != nil && !rec.answered && !rec.timedOut {
					rec.cancelled = true
				}
			}
		}
	case dir == "<-" && msg.Method == "apply":
		cc := h.chans[msg.Params.Channel]
		if cc == nil {
			break // the handler reports it
		}
		if cc.closed {
			h.violationLocked("apply for %s read after its channel.close answer: %.200s", cc.name, frame)
		}
		h.settleLocked(cc)
		rev, _ := strconv.ParseUint(msg.Params.Revision, 10, 64)
		h.checkDeltaOrderLocked(cc, rev, msg.Params.Epoch, msg.Params.BaseRevision, msg.Params.Patch != nil)
		rec := &chaosApplyRec{id: string(msg.ID), cc: cc, epoch: msg.Params.Epoch, rev: rev, delta: msg.Params.Patch != nil}
		cc.unsettled = rec
		h.applyIDs[rec.id] = rec
	case dir == "->" && msg.Method == "" && len(msg.ID) > 0:
		if rec := h.applyIDs[string(msg.ID)]; rec != nil { // the host's answer to an apply
			rec.answered, rec.ok = true, msg.Error == nil
			if msg.Error != nil {
				rec.code = msg.Error.Code
				if rec.code == -32011 {
					rec.cc.rejected = rec
				}
			}
		}
	}
	return len(p), nil
}

// checkDeltaOrderLocked judges an apply request in frame order, once the channel's
// previous apply is settled: a delta follows an apply that counted and is from its
// revision (docs/protocol.md: after a failed apply the next is full), and after a -32011
// answer comes the same revision in full.
func (h *chaosHost) checkDeltaOrderLocked(cc *chaosChan, rev uint64, epoch, baseRevision string, delta bool) {
	if rj := cc.rejected; rj != nil {
		cc.rejected = nil
		switch {
		case delta:
			h.violationLocked("%s: a delta (revision %d) right after the window answered -32011 to revision %d: want the full data", cc.name, rev, rj.rev)
			return // the rule below says the same
		case !rj.timedOut && (rev != rj.rev || epoch != rj.epoch):
			h.violationLocked("%s: after the -32011 answer to revision %d (epoch %q) the next apply is revision %d (epoch %q): want the same revision again in full, at once", cc.name, rj.rev, rj.epoch, rev, epoch)
		}
	}
	if !delta {
		return
	}
	switch {
	case !cc.lastCounted:
		h.violationLocked("%s: a delta to revision %d from baseRevision %q, but the channel's previous apply did not count (none, failed, timed out): want the full data", cc.name, rev, baseRevision)
	case cc.settledEpoch != epoch || strconv.FormatUint(cc.settledRev, 10) != baseRevision:
		h.violationLocked("%s: a delta to revision %d from baseRevision %q (epoch %q), but the last apply the sidecar counted is revision %d of epoch %q", cc.name, rev, baseRevision, epoch, cc.settledRev, cc.settledEpoch)
	}
}

// call runs a request on its own goroutine (the driver never waits on the sidecar).
func (h *chaosHost) call(method string, params any, done func(json.RawMessage, error)) {
	h.calls.Add(1)
	go func() {
		defer h.calls.Done()
		ctx, cancel := context.WithTimeout(context.Background(), chaosWaitBound)
		defer cancel()
		var raw json.RawMessage
		err := h.c.Call(ctx, method, params, &raw)
		if errors.Is(err, context.DeadlineExceeded) {
			h.violation("%s %v: no answer within %v (hang)", method, params, chaosWaitBound)
		}
		if done != nil {
			done(raw, err)
		}
	}()
}

func rpcCode(err error) int64 {
	var rpcErr *sidecar.RPCError
	if errors.As(err, &rpcErr) {
		return rpcErr.Code
	}
	return 0
}

var (
	chaosSteps   = []string{"open", "close", "burst", "epoch", "write", "refresh", "garbage", "flush", "list", "pause"}
	chaosWeights = []int{12, 10, 24, 2, 16, 5, 3, 5, 2, 4}
)

// run drives the chaos for up to events events or d, whichever comes first.
func (h *chaosHost) run(events int, d time.Duration) {
	h.healed.Store(false)
	start := time.Now()
	deadline := start.Add(d)
	for done := 0; done < events; {
		if time.Now().After(deadline) {
			h.mu.Lock()
			h.cutByTime = true
			h.mu.Unlock()
			break
		}
		select {
		case <-h.c.Exited():
			h.t.Fatalf("chaos seed %d: the sidecar exited during the chaos (exit code %d)", h.settings.Seed, h.c.ExitCode())
		default:
		}
		done += h.step()
	}
	h.mu.Lock()
	h.elapsed += time.Since(start)
	h.mu.Unlock()
}

func (h *chaosHost) step() int {
	total := 0
	for _, w := range chaosWeights {
		total += w
	}
	n := h.driver.IntN(total)
	kind := chaosSteps[len(chaosSteps)-1]
	for i, w := range chaosWeights {
		if n < w {
			kind = chaosSteps[i]
			break
		}
		n -= w
	}
	tp := h.topics[h.driver.IntN(len(h.topics))]
	events := 1
	switch kind {
	case "open":
		h.open(tp)
	case "close":
		if cc := h.pickChan(func(cc *chaosChan) bool { return cc.state == "open" || cc.state == "opening" }); cc != nil {
			h.close(cc)
		}
	case "burst", "write":
		if tp.source == "store" {
			h.write(tp, false)
		} else {
			events = h.burst(tp)
		}
	case "epoch":
		if tp.source != "store" {
			h.newEpoch(tp)
		}
	case "refresh":
		if cc := h.pickChan(func(cc *chaosChan) bool { return cc.state == "open" }); cc != nil {
			h.refresh(cc)
		}
	case "garbage":
		h.garbage(tp)
	case "flush":
		h.flush()
	case "list":
		h.call("channel.list", nil, func(_ json.RawMessage, err error) {
			if err != nil {
				h.violation("channel.list: %v", err)
			}
		})
	case "pause":
		time.Sleep(time.Duration(h.driver.IntN(5000)) * time.Microsecond) // load shaping
		return 0
	}
	h.mu.Lock()
	h.events += events
	h.mu.Unlock()
	return events
}

func (h *chaosHost) pickChan(match func(*chaosChan) bool) *chaosChan {
	h.mu.Lock()
	var candidates []*chaosChan
	for _, cc := range h.order {
		if match(cc) {
			candidates = append(candidates, cc)
		}
	}
	h.mu.Unlock()
	if len(candidates) == 0 {
		return nil
	}
	return candidates[h.driver.IntN(len(candidates))]
}

func (h *chaosHost) open(tp *chaosTopic) {
	h.mu.Lock()
	live := 0
	for _, cc := range h.order {
		if cc.state == "open" || cc.state == "opening" {
			live++
		}
	}
	if live >= chaosMaxOpen {
		h.mu.Unlock()
		return
	}
	cc := &chaosChan{name: fmt.Sprintf("c%d", h.nextChan), topic: tp, state: "opening", opened: make(chan struct{})}
	h.nextChan++
	h.chans[cc.name] = cc
	h.order = append(h.order, cc)
	tp.fresh++
	h.counts["channels opened"]++
	params := map[string]any{"channel": cc.name, "topic": tp.name, "source": tp.source}
	if h.deltas {
		params["options"] = h.deltaOptionsLocked(cc)
		if cc.deltasOn {
			h.counts["channels with deltas"]++
		}
		if cc.paths != nil {
			h.counts["channels with paths"]++
		}
	}
	h.mu.Unlock()
	h.call("channel.open", params, func(_ json.RawMessage, err error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		cc.openOK = err == nil
		close(cc.opened)
		if err != nil {
			h.counts["opens failed"]++
			if code := rpcCode(err); code != -32007 && code != -32001 {
				h.violationLocked("channel.open %s: %v, want success, -32007 (sync failed) or -32001 (closed while opening)", cc.name, err)
			}
		}
		if cc.state != "opening" {
			return
		}
		if err != nil {
			cc.state = "failed"
			return
		}
		cc.state = "open"
	})
}

func (h *chaosHost) close(cc *chaosChan) {
	h.mu.Lock()
	if cc.state != "open" && cc.state != "opening" {
		h.mu.Unlock() // its open failed since it was picked: nothing to close
		return
	}
	wasOpening := cc.state == "opening"
	cc.state = "closing"
	h.mu.Unlock()
	h.call("channel.close", map[string]any{"channel": cc.name}, func(_ json.RawMessage, err error) {
		if err != nil && wasOpening && rpcCode(err) == -32001 {
			// The close and the open went out on different goroutines, so the close may
			// have been read first ("not open"). Once the open is answered, a host closes
			// again what did open.
			<-cc.opened
			h.mu.Lock()
			reopened := cc.openOK
			h.mu.Unlock()
			err = nil
			if reopened {
				ctx, cancel := context.WithTimeout(context.Background(), chaosWaitBound)
				err = h.c.Call(ctx, "channel.close", map[string]any{"channel": cc.name}, nil)
				cancel()
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		cc.state = "closed"
		h.counts["channels closed"]++
		if err != nil {
			h.violationLocked("channel.close %s (opening when closed: %v, open answered ok: %v): %v", cc.name, wasOpening, cc.openOK, err)
		}
	})
}

func (h *chaosHost) refresh(cc *chaosChan) {
	h.mu.Lock()
	cc.topic.fresh++
	h.counts["refreshes"]++
	h.mu.Unlock()
	h.call("channel.refresh", map[string]any{"channel": cc.name}, func(_ json.RawMessage, err error) {
		if err == nil {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.counts["refreshes failed"]++
		// -32007: the refresh failed (a fault); -32001: the channel closed meanwhile.
		if code := rpcCode(err); code != -32007 && code != -32001 {
			h.violationLocked("channel.refresh %s: %v", cc.name, err)
		}
	})
}

// burst moves a host or channel-sourced topic on by 1..8 revisions and sends the
// invalidations through the faulty bus: once per revision for a host topic (the sidecar
// fans out), once per revision and open channel for a channel topic.
func (h *chaosHost) burst(tp *chaosTopic) int {
	k := 1 + h.driver.IntN(8)
	h.mu.Lock()
	first := tp.rev + 1
	tp.rev += uint64(k)
	tp.bursts++
	epoch := tp.epoch
	var targets []string
	if tp.source == "channel" {
		for _, cc := range h.order {
			if cc.topic == tp && (cc.state == "open" || cc.state == "opening") {
				targets = append(targets, cc.name)
			}
		}
	}
	h.mu.Unlock()
	revs := make([]uint64, k)
	for i := range revs {
		revs[i] = first + uint64(i)
	}
	if h.driver.IntN(3) == 0 {
		h.driver.Shuffle(len(revs), func(i, j int) { revs[i], revs[j] = revs[j], revs[i] })
	}
	for _, r := range revs {
		params := map[string]any{"topic": tp.name, "revision": strconv.FormatUint(r, 10)}
		if h.driver.IntN(10) >= 3 {
			params["epoch"] = epoch // hosts may leave the epoch out
		}
		if tp.source == "host" {
			h.send(tp, params)
			continue
		}
		for _, name := range targets {
			withChannel := map[string]any{"channel": name}
			for k, v := range params {
				withChannel[k] = v
			}
			h.send(tp, withChannel)
		}
	}
	return k
}

func (h *chaosHost) newEpoch(tp *chaosTopic) {
	h.mu.Lock()
	tp.epoch = fmt.Sprintf("e%d", h.events)
	tp.rev = 1 + h.driver.Uint64N(3)
	tp.bursts++
	h.counts["epoch changes"]++
	var targets []string
	for _, cc := range h.order {
		if tp.source == "channel" && cc.topic == tp && (cc.state == "open" || cc.state == "opening") {
			targets = append(targets, cc.name)
		}
	}
	params := map[string]any{"topic": tp.name, "revision": strconv.FormatUint(tp.rev, 10), "epoch": tp.epoch}
	h.mu.Unlock()
	if tp.source == "host" {
		h.send(tp, params)
		return
	}
	for _, name := range targets {
		withChannel := map[string]any{"channel": name}
		for k, v := range params {
			withChannel[k] = v
		}
		h.send(tp, withChannel)
	}
}

// send is the faulty bus between the host's state and the sidecar.
func (h *chaosHost) send(tp *chaosTopic, params map[string]any) {
	h.mu.Lock()
	tp.events++
	if h.healed.Load() {
		h.mu.Unlock()
		h.notify(params)
		return
	}
	n := h.driver.IntN(100)
	switch {
	case n < 12:
		h.faults["event drop"]++
		h.mu.Unlock()
	case n < 20:
		h.faults["event duplicate"]++
		h.mu.Unlock()
		h.notify(params)
		h.notify(params)
	case n < 32:
		h.faults["event reorder"]++
		h.held = append(h.held, heldEvent{params: params})
		h.mu.Unlock()
	case n < 44 && h.delayed < chaosMaxDelayed:
		h.faults["event delay"]++
		h.delayed++
		delay := time.Duration(h.faultRand.IntN(10)+1) * time.Millisecond
		h.mu.Unlock()
		h.bus.Add(1)
		go func() {
			defer h.bus.Done()
			timer := time.NewTimer(delay)
			<-timer.C
			h.notify(params)
			h.mu.Lock()
			h.delayed--
			h.mu.Unlock()
		}()
	default:
		h.mu.Unlock()
		h.notify(params)
	}
}

// notify sends one invalidate notification, noting whether its epoch had already ended.
func (h *chaosHost) notify(params map[string]any) {
	h.mu.Lock()
	for _, tp := range h.topics {
		if tp.name == params["topic"] && tp.source == "host" {
			if e, ok := params["epoch"].(string); ok && e != tp.epoch {
				tp.lateEpoch++
			}
		}
	}
	h.counts["invalidations sent"]++
	h.mu.Unlock()
	if err := h.c.Notify("invalidate", params); err != nil {
		h.violation("sending invalidate: %v (the sidecar's stdin is gone)", err)
	}
}

func (h *chaosHost) flush() {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	h.driver.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	for _, ev := range held {
		h.notify(ev.params)
	}
}

// write is a store write, now and then a compare-and-set that may lose; final is the
// write of converge (see writeParamsLocked).
func (h *chaosHost) write(tp *chaosTopic, final bool) {
	h.mu.Lock()
	params := h.writeParamsLocked(tp, final)
	data := params["data"].(json.RawMessage)
	counts := params["counts"]
	delete(params, "counts") // the host's own, not sent
	method := "state.set"
	if _, ok := params["patch"]; ok {
		method = "state.patch" // data is what the patch must make of the topic's data
		delete(params, "data")
		h.counts["store writes by state.patch"]++
	}
	h.counts["store writes"]++
	h.mu.Unlock()
	var res struct {
		Revision string `json:"revision"`
	}
	err := h.c.Call(h.ctx(), method, params, &res)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.counts["store writes refused"]++
		if rpcCode(err) != -32005 || final {
			h.violationLocked("%s %s (final: %v): %v, want success or, unless final, -32005 (revision conflict)", method, tp.name, final, err)
		}
		return
	}
	rev, perr := strconv.ParseUint(res.Revision, 10, 64)
	if perr != nil || rev <= tp.rev {
		h.violationLocked("%s %s answered revision %q after %d: want a strictly greater revision", method, tp.name, res.Revision, tp.rev)
		return
	}
	tp.rev = rev
	tp.events++
	tp.storeData[rev] = string(data)
	if h.deltas {
		tp.storeCounts[rev] = counts.([]int)
	}
}

// writeParamsLocked draws a state.set: a blind write, a compare-and-set that wins, or
// one that loses (-32005); with deltas on, half the time the same change goes as a
// state.patch (params["patch"], see storePatchLocked). A final write never loses: a lost one invalidates nothing, so
// a channel whose last apply failed during the chaos would never hear of the final
// revision (the engine retries a failed apply on the next event, not by itself).
func (h *chaosHost) writeParamsLocked(tp *chaosTopic, final bool) map[string]any {
	h.nextWrite++
	data := fmt.Sprintf(`{"topic":%q,"write":%d,"pad":%q}`, tp.name, h.nextWrite, strings.Repeat("x", h.driver.IntN(512)))
	params := map[string]any{"topic": tp.name}
	if h.deltas {
		// One or two keys of the current data change (params["counts"] is the host's
		// note of them, taken out before sending).
		counts := make([]int, deltaKeys)
		copy(counts, tp.storeCounts[tp.rev])
		var changed []int
		for range 1 + h.driver.IntN(2) {
			i := h.driver.IntN(deltaKeys)
			counts[i]++
			changed = append(changed, i)
		}
		data = chaosDeltaDoc(map[string]any{"topic": tp.name, "write": h.nextWrite}, counts)
		params["counts"] = counts
		if tp.rev > 0 && h.driver.IntN(2) == 0 {
			params["patch"] = h.storePatchLocked(tp, final, counts, changed)
		}
	}
	params["data"] = json.RawMessage(data)
	switch h.driver.IntN(10) {
	case 0, 1: // a compare-and-set that wins
		params["expectedRevision"] = strconv.FormatUint(tp.rev, 10)
	case 2: // one that loses: -32005
		if tp.rev > 0 && !final {
			params["expectedRevision"] = strconv.FormatUint(tp.rev-1, 10)
		}
	}
	return params
}

var chaosGarbageLines = []string{
	"not json",
	`{"jsonrpc":"2.0","id":`,
	`[{"jsonrpc":"2.0","method":"initialize"}]`,
	`{"jsonrpc":"1.0","id":1,"method":"channel.list"}`,
	`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"host-0","revision":"007"}}`,
	`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"","revision":"1"}}`,
	`{"jsonrpc":"2.0","method":"invalidate","params":[1,2]}`,
	`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"store-4","revision":"9"}}`,
	`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"channel-2","revision":"99999999999999999999"}}`,
	"\x00\x01\x02\xff",
}

func (h *chaosHost) garbage(tp *chaosTopic) {
	h.mu.Lock()
	h.faults["garbage"]++
	h.mu.Unlock()
	switch h.driver.IntN(3) {
	case 0:
		line := chaosGarbageLines[h.driver.IntN(len(chaosGarbageLines))]
		if err := h.c.WriteRaw([]byte(line + "\n")); err != nil {
			h.violation("writing a garbage line: %v", err)
		}
	case 1:
		h.call("channel.sing", map[string]any{"channel": "x"}, func(_ json.RawMessage, err error) {
			if rpcCode(err) != -32601 {
				h.violation("unknown method: got %v, want -32601", err)
			}
		})
	default:
		h.call("channel.open", map[string]any{"channel": 7, "topic": tp.name}, func(_ json.RawMessage, err error) {
			if rpcCode(err) != -32602 {
				h.violation("channel.open with a numeric channel: got %v, want -32602", err)
			}
		})
	}
}

// quiesce heals the faults and waits for the host's own calls and delayed events. It
// does not wait for the sidecar: refreshes started during the chaos may still run.
func (h *chaosHost) quiesce() {
	h.healed.Store(true)
	h.mu.Lock()
	h.held = nil // reordered events never sent: they were old anyway
	h.mu.Unlock()
	h.waitGroup(&h.bus, "delayed invalidations")
	h.waitGroup(&h.calls, "requests in flight")
}

func (h *chaosHost) waitGroup(wg *sync.WaitGroup, what string) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(chaosWaitBound):
		h.mu.Lock()
		defer h.mu.Unlock()
		h.t.Fatalf("chaos seed %d: %s did not finish within %v (hang); violations so far: %s", h.settings.Seed, what, chaosWaitBound, strings.Join(h.violations, "\n"))
	}
}

// converge sends the final word per topic and waits until every open channel applied it.
func (h *chaosHost) converge() {
	h.mu.Lock()
	var open []*chaosChan
	for _, cc := range h.order {
		if cc.state == "open" {
			open = append(open, cc)
		}
	}
	type finalEvent struct {
		tp     *chaosTopic
		params map[string]any
	}
	var finals []finalEvent
	for _, tp := range h.topics {
		if tp.source == "store" {
			continue
		}
		tp.bursts++
		params := map[string]any{"topic": tp.name, "revision": strconv.FormatUint(tp.rev, 10), "epoch": tp.epoch}
		if tp.source == "host" {
			finals = append(finals, finalEvent{tp, params})
			continue
		}
		for _, cc := range open {
			if cc.topic == tp {
				withChannel := map[string]any{"channel": cc.name}
				for k, v := range params {
					withChannel[k] = v
				}
				finals = append(finals, finalEvent{tp, withChannel})
			}
		}
	}
	h.mu.Unlock()
	for _, f := range finals {
		h.send(f.tp, f.params)
	}
	for _, tp := range h.topics {
		if tp.source == "store" {
			h.write(tp, true)
		}
	}

	converged := func(cc *chaosChan) bool {
		if !cc.hasLast || (cc.topic.source != "store" && cc.lastEpoch != cc.topic.epoch) {
			return false
		}
		if cc.paths != nil {
			// No apply comes when the projection did not change: judge what it holds.
			want, ok := h.wantDataLocked(cc, cc.topic.epoch, cc.topic.rev)
			return ok && sameJSON([]byte(cc.lastData), []byte(want))
		}
		if cc.lastRev != cc.topic.rev {
			return false
		}
		return cc.topic.source != "store" || sameJSON([]byte(cc.lastData), []byte(cc.topic.storeData[cc.topic.rev]))
	}
	// wantLocal is the localRevision channel.list must show: what the window applied, or
	// for a paths channel the topic's revision (docs/protocol.md: the latest revision
	// whose projection it holds).
	wantLocal := func(cc *chaosChan) string {
		if cc.paths != nil {
			return strconv.FormatUint(cc.topic.rev, 10)
		}
		return strconv.FormatUint(cc.lastRev, 10)
	}
	deadline := time.After(chaosWaitBound)
	for {
		h.mu.Lock()
		var behind []*chaosChan
		for _, cc := range open {
			if !converged(cc) {
				behind = append(behind, cc)
			}
		}
		changed := h.changed
		h.mu.Unlock()
		if len(behind) == 0 {
			break
		}
		select {
		case <-changed:
			continue
		case <-deadline:
		}
		h.mu.Lock()
		for _, cc := range behind {
			h.violationLocked("%s (%s, source %s) did not converge after the final invalidation: last applied epoch %q revision %d, want epoch %q revision %d",
				cc.name, cc.topic.name, cc.topic.source, cc.lastEpoch, cc.lastRev, cc.topic.epoch, cc.topic.rev)
		}
		h.mu.Unlock()
		break
	}

	// channel.list agrees with what the windows applied. An apply's answer may still be
	// on its way to the sidecar when the host recorded it, and a paths channel whose
	// projection did not change moves on with no apply the host sees, so ask again
	// (bounded) until it agrees.
	type listed struct {
		Channels []struct {
			Channel       string `json:"channel"`
			State         string `json:"state"`
			LocalRevision string `json:"localRevision"`
		} `json:"channels"`
	}
	var list listed
	agrees := func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(list.Channels) != len(open) {
			return false
		}
		for _, st := range list.Channels {
			cc := h.chans[st.Channel]
			if cc == nil || st.LocalRevision != wantLocal(cc) {
				return false
			}
		}
		return true
	}
	// localRevision moves in the sidecar once the last apply's answer is read there, and
	// no message says so: ask again, bounded, pausing 1 ms after the quick retries.
	listDeadline := time.Now().Add(chaosWaitBound)
	for tries := 0; ; tries++ {
		list = listed{}
		require.NoError(h.t, h.c.Call(h.ctx(), "channel.list", nil, &list))
		if agrees() || time.Now().After(listDeadline) {
			break
		}
		if tries >= 200 {
			time.Sleep(time.Millisecond)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts["open at the end"] = len(open)
	if len(list.Channels) != len(open) {
		h.violationLocked("channel.list: %d channels, the host has %d open", len(list.Channels), len(open))
	}
	for _, st := range list.Channels {
		cc := h.chans[st.Channel]
		if cc == nil || cc.state != "open" {
			state := "unknown"
			if cc != nil {
				state = cc.state
			}
			h.violationLocked("channel.list lists %s (%s, local %s), which the host has %s", st.Channel, st.State, st.LocalRevision, state)
			continue
		}
		if st.State != "running" || st.LocalRevision != wantLocal(cc) {
			h.violationLocked("channel.list: %s is %s at %s, want running at %s (the window applied %d, paths %v)", st.Channel, st.State, st.LocalRevision, wantLocal(cc), cc.lastRev, cc.paths)
		}
	}
	h.checkFinalDataLocked(open)
}

func (h *chaosHost) checkFetchBound() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, tp := range h.topics {
		if tp.source != "host" {
			continue
		}
		bound := 2*tp.bursts + tp.fresh + tp.faulty + 2*tp.lateEpoch
		h.t.Logf("host topic %s: %d getSnapshot for %d invalidations in %d bursts, %d fresh requests, %d faulty answers, %d late-epoch invalidations: bound %d",
			tp.name, tp.fetches, tp.events, tp.bursts, tp.fresh, tp.faulty, tp.lateEpoch, bound)
		if tp.fetches > bound {
			h.violationLocked("host topic %s: %d getSnapshot calls, over the bound of %d (2×%d bursts + %d fresh + %d faulty + 2×%d late-epoch)",
				tp.name, tp.fetches, bound, tp.bursts, tp.fresh, tp.faulty, tp.lateEpoch)
		}
	}
}

// closeAll closes every channel still open and checks that channel.list is empty.
func (h *chaosHost) closeAll() {
	h.mu.Lock()
	var live []*chaosChan
	for _, cc := range h.order {
		if cc.state == "open" || cc.state == "opening" {
			live = append(live, cc)
		}
	}
	h.mu.Unlock()
	for _, cc := range live {
		h.close(cc)
	}
	h.waitGroup(&h.calls, "closing every channel")
	var list struct {
		Channels []json.RawMessage `json:"channels"`
	}
	require.NoError(h.t, h.c.Call(h.ctx(), "channel.list", nil, &list))
	if len(list.Channels) != 0 {
		h.violation("channel.list after every channel closed: %d channels, want 0", len(list.Channels))
	}
}

// rss is the sidecar's resident memory in KiB, from /proc; -1 where there is no /proc.
func (h *chaosHost) rss() int {
	kib, err := procStatusKiB(h.c.Pid(), "VmRSS")
	if err != nil {
		h.t.Logf("no resident memory figure (%v): the memory check is skipped", err)
		return -1
	}
	return kib
}

// checkMemory: after the chaos and every channel closed, the resident memory is back
// near its level after the warm-up round. A leak per event (a call, a channel, a
// snapshot kept) grows with the events of the main round, which are 9× the warm-up's.
// The -race runtime's own memory grows with the goroutines it has seen (about 20 MiB per
// 100k events here), so the race binary gets a wide margin that only a gross leak
// crosses; CHAOS_PLAIN=1 (task soak) runs the binary users get, with a tight one (it
// stays within a MiB over 100k events).
func (h *chaosHost) checkMemory(warmKiB, endKiB int) {
	slack := max(64<<10, warmKiB) // KiB
	if h.plain {
		slack = max(16<<10, warmKiB/2)
	}
	if warmKiB >= 0 && endKiB >= 0 && endKiB > warmKiB+slack {
		h.mu.Lock()
		h.counts["leaks"]++
		h.violationLocked("resident memory %d KiB after every channel closed, %d KiB after the warm-up (+%d KiB slack): a leak", endKiB, warmKiB, slack)
		h.mu.Unlock()
	}
}

// exit closes stdin: the sidecar must exit 0, promptly, having survived everything.
func (h *chaosHost) exit() {
	select {
	case <-h.c.Exited():
		h.violation("the sidecar died during the chaos (exit code %d)", h.c.ExitCode())
		return
	default:
	}
	if err := h.c.Close(10 * time.Second); err != nil {
		h.violation("closing stdin: %v", err)
	}
	if code := h.c.ExitCode(); code != 0 {
		h.violation("exit code %d after stdin closed, want 0", code)
	}
	// Every frame is in and every host handler has returned: settle the last applies.
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cc := range h.order {
		h.settleLocked(cc)
	}
}

func (h *chaosHost) report(warmKiB, endKiB int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	build := "-race"
	if h.plain {
		build = "plain, no -race"
	}
	deltas := "off"
	if h.deltas {
		deltas = "on"
	}
	fmt.Fprintf(&b, "chaos (real binary, %s, deltas %s) seed %d: %d events in %s", build, deltas, h.settings.Seed, h.events, h.elapsed.Round(time.Millisecond))
	if h.cutByTime {
		fmt.Fprintf(&b, " (cut by CHAOS_DURATION=%s)", h.settings.Duration)
	}
	fmt.Fprintf(&b, "\n  channels: %d opened, %d closed, %d opens failed, %d open at the end (max %d at once)",
		h.counts["channels opened"], h.counts["channels closed"], h.counts["opens failed"], h.counts["open at the end"], chaosMaxOpen)
	fmt.Fprintf(&b, "\n  traffic: %d invalidations sent, %d store writes (%d refused), %d epoch changes, %d refreshes (%d failed), %d applies acknowledged by the host, %d counted by the sidecar (%d apply timeouts reported)",
		h.counts["invalidations sent"], h.counts["store writes"], h.counts["store writes refused"], h.counts["epoch changes"], h.counts["refreshes"], h.counts["refreshes failed"], h.counts["applies acknowledged"], h.counts["applies counted"], h.counts["apply timeouts"])
	total := 0
	for _, n := range h.faults {
		total += n
	}
	fmt.Fprintf(&b, "\n  faults injected: %d: %s", total, chaos.FormatCounts(h.faults))
	fmt.Fprintf(&b, "\n  error notifications by phase: %s", chaos.FormatCounts(h.errs))
	codes := map[string]int{}
	for c, n := range h.codes {
		codes[strconv.FormatInt(c, 10)] = n
	}
	fmt.Fprintf(&b, "\n  error answers by code: %s", chaos.FormatCounts(codes))
	h.reportDeltas(&b)
	fmt.Fprintf(&b, "\n  resident memory: %d KiB after the warm-up, %d KiB at the end", warmKiB, endKiB)
	fmt.Fprintf(&b, "\n  invariant violations: %d", h.counts["violations"])
	fmt.Fprintf(&b, "\n  leaks: %d", h.counts["leaks"])
	h.t.Log(b.String())
	if h.counts["violations"] > 0 {
		env := ""
		if h.deltas && h.t.Name() == "TestChaos" {
			env = "CHAOS_DELTAS=1 "
		}
		h.t.Errorf("chaos seed %d (replay: %sCHAOS_SEED=%d go test -race -run '^%s$' ./e2e):\n%s", h.settings.Seed, env, h.settings.Seed, h.t.Name(), strings.Join(h.violations, "\n"))
	}
}

// procStatusKiB reads one "Name:   N kB" line of /proc/PID/status.
func procStatusKiB(pid int, field string) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

var (
	plainOnce sync.Once
	plainPath string
	plainErr  error
)

// plainBinary builds the sidecar without -race, once per test run.
func plainBinary(t *testing.T) string {
	t.Helper()
	plainOnce.Do(func() {
		plainPath = filepath.Join(filepath.Dir(binary), "statesync-sidecar-plain")
		out, err := exec.Command("go", "build", "-o", plainPath, "../cmd/statesync-sidecar").CombinedOutput()
		if err != nil {
			plainErr = fmt.Errorf("building the sidecar without -race: %v\n%s", err, out)
		}
	})
	require.NoError(t, plainErr)
	return plainPath
}
