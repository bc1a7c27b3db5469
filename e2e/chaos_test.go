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
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/internal/chaos"
	"github.com/state-sync/state-sync/internal/jsonpatch"

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
// memory is the one users get. task soak runs it long.
func TestChaos(t *testing.T) {
	runChaos(t, chaos.SettingsFromEnv(t, 5000, 10, 25*time.Second), false)
}

// TestChaosWithDeltas is TestChaos with windows that take deltas (issue 15): half the
// channels open with options.deltas, every state carries a 2 KiB part that does not
// change (so that patches are worth sending), and the host takes a patch only on top of
// the revision it holds for the channel, answering -32011 otherwise, as the SDK does. The
// invariants are TestChaos's: the same final state, no violation.
func TestChaosWithDeltas(t *testing.T) {
	runChaos(t, chaos.SettingsFromEnv(t, 3000, 10, 15*time.Second), true)
}

func runChaos(t *testing.T, settings chaos.Settings, deltas bool) {
	t.Logf("chaos seed %d (replay with CHAOS_SEED=%d), up to %d events or %s, deltas %v", settings.Seed, settings.Seed, settings.Events, settings.Duration, deltas)
	h := newChaosHost(t, settings)
	if deltas {
		h.blob = strings.Repeat("b", 2048)
	}
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
	h.checkFetchBound()
	h.closeAll()
	endRSS := h.rss()
	h.checkMemory(warmRSS, endRSS)
	h.exit()
	h.report(warmRSS, endRSS)
	if deltas {
		h.mu.Lock()
		defer h.mu.Unlock()
		t.Logf("deltas taken by the windows: %d; rejected for their base (-32011): %d", h.counts["deltas"], h.counts["deltas rejected (base)"])
		require.Positive(t, h.counts["deltas"], "no apply was a delta: the run did not test them")
	}
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
}

type chaosChan struct {
	name  string
	topic *chaosTopic

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
}

// chaosApplyRec is one apply request as it crossed the pipes.
type chaosApplyRec struct {
	id       string
	epoch    string
	rev      uint64
	answered bool // the host wrote its answer
	ok       bool // and it was a result
	timedOut bool // the sidecar reported it gave up on the call
	// cancelled: its channel's close was answered while it was unanswered and not timed
	// out. The close cancelled it, unreported (docs/lifecycle.md, Stop quiescence), and
	// the host's late answer may never be written: at exit its handler's ctx ends first.
	cancelled bool
}

type chaosHost struct {
	t        *testing.T
	settings chaos.Settings
	// blob, when set, is in every state and opens half the channels with deltas: see
	// TestChaosWithDeltas.
	blob   string
	plain  bool // CHAOS_PLAIN: the binary built without -race
	driver *rand.Rand
	healed atomic.Bool
	c      *sidecar.Client

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
		tp := &chaosTopic{name: fmt.Sprintf("%s-%d", source, i), source: source, epoch: "e0", storeData: map[uint64]string{}}
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
	c, err := sidecar.Start(context.Background(), sidecar.Options{
		Path:    path,
		Args:    []string{"--call-timeout", chaosCallTimeout.String(), "--max-channels", strconv.Itoa(chaosMaxChannels)},
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
	}
	require.NoError(h.t, c.Call(h.ctx(), "initialize", map[string]any{"protocolVersion": "1", "client": map[string]string{"name": "chaos"}}, &init))
	require.Equal(h.t, "1", init.ProtocolVersion)
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

func chaosData(topic, epoch string, rev uint64, blob string) string {
	if blob != "" {
		return fmt.Sprintf(`{"topic":%q,"epoch":%q,"revision":"%d","blob":%q}`, topic, epoch, rev, blob)
	}
	return fmt.Sprintf(`{"topic":%q,"epoch":%q,"revision":"%d"}`, topic, epoch, rev)
}

// sameJSON reports whether a and b are the same JSON value (a window that applied a
// patch holds the value, not the bytes, it was sent before).
func sameJSON(a, b string) bool {
	if a == b {
		return true
	}
	var va, vb any
	return json.Unmarshal([]byte(a), &va) == nil && json.Unmarshal([]byte(b), &vb) == nil && reflect.DeepEqual(va, vb)
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
	return map[string]any{"revision": strconv.FormatUint(rev, 10), "epoch": epoch, "data": json.RawMessage(chaosData(tp.name, epoch, rev, h.blob))}, nil
}

func (h *chaosHost) apply(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Channel      string          `json:"channel"`
		Topic        string          `json:"topic"`
		Revision     string          `json:"revision"`
		Epoch        string          `json:"epoch"`
		Data         json.RawMessage `json:"data"`
		BaseRevision *string         `json:"baseRevision"`
		Patch        json.RawMessage `json:"patch"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		h.violation("apply params %s: %v", raw, err)
		return nil, err
	}
	rev, err := strconv.ParseUint(p.Revision, 10, 64)
	h.mu.Lock()
	cc := h.chans[p.Channel]
	if p.BaseRevision != nil && cc != nil && err == nil {
		// A delta: taken only on top of the revision this window holds, as the SDK does.
		if !cc.hasLast || cc.lastEpoch != p.Epoch || strconv.FormatUint(cc.lastRev, 10) != *p.BaseRevision {
			h.counts["deltas rejected (base)"]++
			h.mu.Unlock()
			return nil, &sidecar.RPCError{Code: -32011, Message: "delta rejected: base mismatch", Data: json.RawMessage(`{"reason":"baseMismatch"}`)}
		}
		ops, perr := jsonpatch.DecodePatch(p.Patch)
		var next []byte
		if perr == nil {
			next, perr = jsonpatch.Apply([]byte(cc.lastData), ops)
		}
		if perr != nil {
			h.violationLocked("apply %s revision %d: its patch from %s does not apply to the data the window holds: %v", p.Channel, rev, *p.BaseRevision, perr)
			h.mu.Unlock()
			return nil, &sidecar.RPCError{Code: -32011, Message: "delta rejected: patch failed", Data: json.RawMessage(`{"reason":"patchFailed"}`)}
		}
		p.Data = next
		h.counts["deltas"]++
	}
	switch {
	case err != nil:
		h.violationLocked("apply %s: revision %q: %v", p.Channel, p.Revision, err)
	case cc == nil:
		h.violationLocked("apply for channel %q, which the host never opened", p.Channel)
	case cc.topic.name != p.Topic:
		h.violationLocked("apply for %s names topic %q, want %q", p.Channel, p.Topic, cc.topic.name)
	case cc.topic.source == "store":
		var d struct {
			Topic string `json:"topic"`
		}
		if json.Unmarshal(p.Data, &d) != nil || d.Topic != cc.topic.name {
			h.violationLocked("apply %s revision %d: data %s is not a write of topic %s", p.Channel, rev, p.Data, cc.topic.name)
		}
		if want, ok := cc.topic.storeData[rev]; ok && !sameJSON(want, string(p.Data)) {
			h.violationLocked("apply %s revision %d: data %s, but state.set wrote %s at that revision", p.Channel, rev, p.Data, want)
		}
	default:
		if want := chaosData(cc.topic.name, p.Epoch, rev, h.blob); !sameJSON(string(p.Data), want) {
			h.violationLocked("apply %s revision %d epoch %q: data %s, want %s", p.Channel, rev, p.Epoch, p.Data, want)
		}
	}
	if cc == nil || err != nil {
		h.mu.Unlock()
		return nil, &sidecar.RPCError{Code: -32602, Message: "unexpected apply"}
	}
	fault := h.pickLocked(chaosApplyFaults, chaosApplyWeights)
	delay := time.Duration(h.faultRand.IntN(5)+1) * time.Millisecond
	if fault != "ok" {
		h.faults["apply "+fault]++
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
	cc.hasLast, cc.lastEpoch, cc.lastRev, cc.lastData = true, p.Epoch, rev, string(p.Data)
	h.counts["applies acknowledged"]++
	h.signalLocked()
	return map[string]bool{"ok": true}, nil
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
	delete(h.applyIDs, rec.id)
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
	cc.settled, cc.settledEpoch, cc.settledRev = true, rec.epoch, rec.rev
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
			Channel  string `json:"channel"`
			Revision string `json:"revision"`
			Epoch    string `json:"epoch"`
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
		rec := &chaosApplyRec{id: string(msg.ID), epoch: msg.Params.Epoch, rev: rev}
		cc.unsettled = rec
		h.applyIDs[rec.id] = rec
	case dir == "->" && msg.Method == "" && len(msg.ID) > 0:
		if rec := h.applyIDs[string(msg.ID)]; rec != nil { // the host's answer to an apply
			rec.answered, rec.ok = true, msg.Error == nil
		}
	}
	return len(p), nil
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
	h.mu.Unlock()
	params := map[string]any{"channel": cc.name, "topic": tp.name, "source": tp.source}
	if h.blob != "" && h.nextChan%2 == 0 {
		params["options"] = map[string]any{"deltas": true}
	}
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
	h.counts["store writes"]++
	h.mu.Unlock()
	var res struct {
		Revision string `json:"revision"`
	}
	err := h.c.Call(h.ctx(), "state.set", params, &res)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.counts["store writes refused"]++
		if rpcCode(err) != -32005 || final {
			h.violationLocked("state.set %s (final: %v): %v, want success or, unless final, -32005 (revision conflict)", tp.name, final, err)
		}
		return
	}
	rev, perr := strconv.ParseUint(res.Revision, 10, 64)
	if perr != nil || rev <= tp.rev {
		h.violationLocked("state.set %s answered revision %q after %d: want a strictly greater revision", tp.name, res.Revision, tp.rev)
		return
	}
	tp.rev = rev
	tp.events++
	tp.storeData[rev] = string(data)
}

// writeParamsLocked draws a state.set: a blind write, a compare-and-set that wins, or
// one that loses (-32005). A final write never loses: a lost one invalidates nothing, so
// a channel whose last apply failed during the chaos would never hear of the final
// revision (the engine retries a failed apply on the next event, not by itself).
func (h *chaosHost) writeParamsLocked(tp *chaosTopic, final bool) map[string]any {
	h.nextWrite++
	data := fmt.Sprintf(`{"topic":%q,"write":%d,"pad":%q}`, tp.name, h.nextWrite, strings.Repeat("x", h.driver.IntN(512)))
	if h.blob != "" {
		data = data[:len(data)-1] + fmt.Sprintf(`,"blob":%q}`, h.blob)
	}
	params := map[string]any{"topic": tp.name, "data": json.RawMessage(data)}
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
		if !cc.hasLast || cc.lastRev != cc.topic.rev {
			return false
		}
		if cc.topic.source == "store" {
			return sameJSON(cc.lastData, cc.topic.storeData[cc.topic.rev])
		}
		return cc.lastEpoch == cc.topic.epoch
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
	// on its way to the sidecar when the host recorded it, so ask again (bounded) until
	// it agrees.
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
			if cc == nil || st.LocalRevision != strconv.FormatUint(cc.lastRev, 10) {
				return false
			}
		}
		return true
	}
	for range 200 {
		list = listed{}
		require.NoError(h.t, h.c.Call(h.ctx(), "channel.list", nil, &list))
		if agrees() {
			break
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
		if st.State != "running" || st.LocalRevision != strconv.FormatUint(cc.lastRev, 10) {
			h.violationLocked("channel.list: %s is %s at %s, the window applied %d", st.Channel, st.State, st.LocalRevision, cc.lastRev)
		}
	}
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
	fmt.Fprintf(&b, "chaos (real binary, %s) seed %d: %d events in %s", build, h.settings.Seed, h.events, h.elapsed.Round(time.Millisecond))
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
	fmt.Fprintf(&b, "\n  resident memory: %d KiB after the warm-up, %d KiB at the end", warmKiB, endKiB)
	fmt.Fprintf(&b, "\n  invariant violations: %d", h.counts["violations"])
	fmt.Fprintf(&b, "\n  leaks: %d", h.counts["leaks"])
	h.t.Log(b.String())
	if h.counts["violations"] > 0 {
		h.t.Errorf("chaos seed %d (replay: CHAOS_SEED=%d go test -race -run 'TestChaos$' ./e2e):\n%s", h.settings.Seed, h.settings.Seed, strings.Join(h.violations, "\n"))
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
