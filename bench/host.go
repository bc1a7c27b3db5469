package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// host is a lean Go host for the sidecar: it spawns the binary over pipes, answers
// getSnapshot at once from a prebuilt payload, acknowledges every apply, and tracks which
// revision each channel has applied. It does on the hot path only what a host must: read
// a frame's envelope (not its data), write an answer. A writer goroutine with an unbounded
// queue does every write, so the reader never blocks on a full stdin pipe (which, with the
// sidecar blocked on a full stdout pipe, would deadlock both).
type host struct {
	cmd   *exec.Cmd
	pid   int
	stdin io.WriteCloser
	out   *bufio.Reader
	w     *writer

	nextID  atomic.Int64
	pmu     sync.Mutex
	pending map[int64]chan reply

	snap      atomic.Pointer[hostSnapshot] // what getSnapshot answers
	published atomic.Uint64                // setSnapshot calls so far; a state's seq

	// answered[provider] is the seq of the state each getSnapshot got, in order; provider
	// is params.channel ("" for the topic's shared fetch). Only while recording is set.
	recording atomic.Bool
	amu       sync.Mutex
	answered  map[string][]uint64

	names   []string
	index   map[string]int
	tmu     sync.Mutex
	applied []uint64 // per channel: highest revision applied
	applies []uint32 // per channel: apply calls
	target  *target

	getSnapshots atomic.Int64
	appliesTotal atomic.Int64
	applyBytes   atomic.Int64 // apply frames' bytes, the newline left out
	errorNotifs  atomic.Int64
	slowFrames   atomic.Int64
	emu          sync.Mutex
	firstErrors  []string

	readDone chan struct{}
	readErr  error
	exited   chan struct{}
	waitErr  error
}

type reply struct {
	result []byte
	err    []byte
}

type hostSnapshot struct {
	seq      uint64 // the how-manieth state the host published
	revision uint64
	rev      []byte // decimal revision
	payload  []byte // raw JSON data
}

// target is "every channel has applied at least rev"; done closes when it holds.
type target struct {
	rev       uint64
	remaining int
	done      chan struct{}
	at        time.Time
}

// sidecarArgs come before a scenario's own arguments on every sidecar spawned (--profile).
var sidecarArgs []string

// channelName is the name of channel i in every scenario (floorchild writes the same).
func channelName(i int) string { return fmt.Sprintf("c%04d", i) }

// startSidecar spawns the sidecar for a scenario with channels channel names known upfront.
func startSidecar(bin string, args []string, channels int) (*host, error) {
	return startHost(bin, append(append([]string(nil), sidecarArgs...), args...), channels)
}

// startHost spawns bin with args (the sidecar, or a floor child) and drives it.
func startHost(bin string, args []string, channels int) (*host, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h := &host{
		cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 4<<20),
		pending: map[int64]chan reply{}, index: map[string]int{},
		applied: make([]uint64, channels), applies: make([]uint32, channels),
		readDone: make(chan struct{}), exited: make(chan struct{}),
	}
	for i := range channels {
		name := channelName(i)
		h.names = append(h.names, name)
		h.index[name] = i
	}
	h.snap.Store(&hostSnapshot{revision: 0, rev: []byte("0"), payload: []byte("null")})
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	h.pid = cmd.Process.Pid
	h.w = newWriter(stdin)
	go h.read()
	go func() {
		<-h.readDone
		h.waitErr = cmd.Wait()
		close(h.exited)
	}()
	return h, nil
}

// setSnapshot publishes a new state: what getSnapshot answers from now on.
func (h *host) setSnapshot(rev uint64, payload []byte) {
	seq := h.published.Add(1)
	h.snap.Store(&hostSnapshot{seq: seq, revision: rev, rev: strconv.AppendUint(nil, rev, 10), payload: payload})
}

// recordAnswers starts (on) or stops recording which state each getSnapshot got.
func (h *host) recordAnswers(on bool) {
	h.amu.Lock()
	if on {
		h.answered = map[string][]uint64{}
	}
	h.amu.Unlock()
	h.recording.Store(on)
}

// answers returns what recordAnswers recorded.
func (h *host) answers() map[string][]uint64 {
	h.amu.Lock()
	defer h.amu.Unlock()
	return h.answered
}

func (h *host) read() {
	defer func() {
		h.pmu.Lock()
		for id, ch := range h.pending {
			close(ch)
			delete(h.pending, id)
		}
		h.pmu.Unlock()
		close(h.readDone)
	}()
	var f frame
	for {
		b, err := readLine(h.out)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				h.readErr = err
			}
			return
		}
		if len(b) == 0 {
			continue
		}
		if !scanFrame(b, &f) {
			h.slowFrames.Add(1)
			if !slowFrame(b, &f) {
				h.noteError("unparsable frame: " + bounded(b))
				continue
			}
		}
		switch {
		case f.response:
			id, err := strconv.ParseInt(string(f.id), 10, 64)
			if err != nil {
				h.noteError("response with an id the harness never sent: " + bounded(b))
				continue
			}
			h.pmu.Lock()
			ch := h.pending[id]
			delete(h.pending, id)
			h.pmu.Unlock()
			if ch != nil {
				ch <- reply{result: clone(f.result), err: clone(f.errObj)}
			}
		case string(f.method) == "apply" && f.id != nil:
			h.onApply(b, &f)
		case string(f.method) == "getSnapshot" && f.id != nil:
			h.getSnapshots.Add(1)
			s := h.snap.Load()
			if h.recording.Load() {
				h.amu.Lock()
				h.answered[string(f.channel)] = append(h.answered[string(f.channel)], s.seq)
				h.amu.Unlock()
			}
			head := make([]byte, 0, 96)
			head = append(head, `{"jsonrpc":"2.0","id":`...)
			head = append(head, f.id...)
			head = append(head, `,"result":{"revision":"`...)
			head = append(head, s.rev...)
			head = append(head, `","data":`...)
			h.w.send(nil, head, s.payload, []byte("}}\n"))
		case f.id != nil:
			msg := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"the bench host answers getSnapshot and apply only"}}`+"\n", f.id)
			h.w.send(nil, msg)
		default: // a notification: error
			h.errorNotifs.Add(1)
			h.noteError(string(f.method) + " " + bounded(f.params))
		}
	}
}

func (h *host) onApply(b []byte, f *frame) {
	ack := make([]byte, 0, 48)
	ack = append(ack, `{"jsonrpc":"2.0","id":`...)
	ack = append(ack, f.id...)
	ack = append(ack, `,"result":{}}`+"\n"...)
	i, known := h.index[string(f.channel)]
	rev, ok := parseUint(f.revision)
	if !known || !ok {
		h.noteError("apply for an unknown channel or with a bad revision: " + bounded(b))
		h.w.send(nil, ack)
		return
	}
	h.appliesTotal.Add(1)
	h.applyBytes.Add(int64(len(b)))
	h.tmu.Lock()
	h.applies[i]++
	if rev > h.applied[i] {
		before := h.applied[i]
		h.applied[i] = rev
		if t := h.target; t != nil && before < t.rev && rev >= t.rev {
			t.remaining--
			if t.remaining == 0 {
				t.at = time.Now()
				close(t.done)
				h.target = nil
			}
		}
	}
	h.tmu.Unlock()
	h.w.send(nil, ack)
}

// expectAll arms a target: every channel in [0, n) at rev or above. It returns at once
// closed when that already holds.
func (h *host) expectAll(n int, rev uint64) *target {
	t := &target{rev: rev, done: make(chan struct{})}
	h.tmu.Lock()
	defer h.tmu.Unlock()
	for i := range n {
		if h.applied[i] < rev {
			t.remaining++
		}
	}
	if t.remaining == 0 {
		t.at = time.Now()
		close(t.done)
		return t
	}
	h.target = t
	return t
}

// wait blocks until t holds, the sidecar exits, or timeout.
func (h *host) wait(t *target, timeout time.Duration, what string) (time.Time, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.done:
		return t.at, nil
	case <-h.readDone:
		return time.Time{}, fmt.Errorf("%s: the sidecar exited (%v)", what, h.readErr)
	case <-timer.C:
		h.tmu.Lock()
		remaining := t.remaining
		h.tmu.Unlock()
		return time.Time{}, fmt.Errorf("%s: %d channels had not applied revision %d after %s (errors: %v)", what, remaining, t.rev, timeout, h.errors())
	}
}

// appliesOf returns a copy of the per-channel apply counters.
func (h *host) appliesOf(n int) []uint32 {
	h.tmu.Lock()
	defer h.tmu.Unlock()
	return append([]uint32(nil), h.applies[:n]...)
}

func (h *host) noteError(s string) {
	h.emu.Lock()
	if len(h.firstErrors) < 5 {
		h.firstErrors = append(h.firstErrors, s)
	}
	h.emu.Unlock()
}

func (h *host) errors() []string {
	h.emu.Lock()
	defer h.emu.Unlock()
	return append([]string(nil), h.firstErrors...)
}

// callAsync sends a request whose params are raw JSON and returns where the reply comes.
func (h *host) callAsync(method string, params []byte) chan reply {
	return h.request(method, params, false)
}

// callAfterBulk is call for a request that must reach the sidecar after every bulk
// notification queued before it: its answer says they were all handled.
func (h *host) callAfterBulk(method string, params []byte, timeout time.Duration) ([]byte, error) {
	return h.await(h.request(method, params, true), timeout, method)
}

func (h *host) request(method string, params []byte, bulk bool) chan reply {
	id := h.nextID.Add(1)
	ch := make(chan reply, 1)
	h.pmu.Lock()
	h.pending[id] = ch
	h.pmu.Unlock()
	msg := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":%q,"params":`, id, method)
	if bulk {
		h.w.sendBulk(nil, msg, params, []byte("}\n"))
	} else {
		h.w.send(nil, msg, params, []byte("}\n"))
	}
	return ch
}

// await waits for a reply; an error answer, an exit or the timeout is an error.
func (h *host) await(ch chan reply, timeout time.Duration, what string) ([]byte, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: the sidecar exited before answering (%v)", what, h.readErr)
		}
		if r.err != nil {
			return nil, fmt.Errorf("%s: error answer %s", what, r.err)
		}
		return r.result, nil
	case <-timer.C:
		return nil, fmt.Errorf("%s: no answer within %s", what, timeout)
	}
}

func (h *host) call(method string, params []byte, timeout time.Duration) ([]byte, error) {
	return h.await(h.callAsync(method, params), timeout, method)
}

// notify sends prebuilt bytes (one or many notification lines) as they are.
func (h *host) notify(lines []byte) { h.w.send(nil, lines) }

// initialize is the optional first request.
func (h *host) initialize(timeout time.Duration) error {
	_, err := h.call("initialize", []byte(`{"protocolVersion":"1","client":{"name":"statesync-bench","version":"1"}}`), timeout)
	return err
}

// openChannels opens channels [0, n) on topic with source, all requests in flight at once
// (as many windows opening together), and waits for every answer.
func (h *host) openChannels(n int, topic, source string, timeout time.Duration) error {
	replies := make([]chan reply, n)
	for i := range n {
		replies[i] = h.callAsync("channel.open", fmt.Appendf(nil, `{"channel":%q,"topic":%q,"source":%q}`, h.names[i], topic, source))
	}
	deadline := time.Now().Add(timeout)
	for i, ch := range replies {
		if _, err := h.await(ch, time.Until(deadline), "channel.open "+h.names[i]); err != nil {
			return err
		}
	}
	return nil
}

// close closes stdin, as a host that goes away, and waits for the exit (then kills).
func (h *host) close(timeout time.Duration) error {
	h.w.close()
	_ = h.stdin.Close()
	select {
	case <-h.exited:
	case <-time.After(timeout):
		_ = h.cmd.Process.Kill()
		<-h.exited
		return fmt.Errorf("the sidecar did not exit within %s of stdin closing; killed", timeout)
	}
	if h.waitErr != nil {
		return fmt.Errorf("the sidecar exited with %v", h.waitErr)
	}
	return nil
}

// readLine returns the next line without its "\n", pointing into r's buffer when it fits.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == nil {
		return trimEOL(line), nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	buf := append([]byte(nil), line...)
	for {
		line, err = r.ReadSlice('\n')
		buf = append(buf, line...)
		switch {
		case err == nil:
			return trimEOL(buf), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func bounded(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// writer owns the pipe to the child: send queues pieces and never blocks. Answers and
// requests (send) go before bulk notifications (sendBulk) that are still queued, as a
// host that answers at once would do; bulk pieces keep their order among themselves.
type writer struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []piece
	bulk   []piece
	closed bool
	done   chan struct{}
	w      *bufio.Writer
	err    error
}

// piece is bytes to write; before, when set, runs right before they are written.
type piece struct {
	b      []byte
	before func()
	first  bool // the first part of a message
}

func newWriter(w io.Writer) *writer {
	wr := &writer{w: bufio.NewWriterSize(w, 256<<10), done: make(chan struct{})}
	wr.cond = sync.NewCond(&wr.mu)
	go wr.loop()
	return wr
}

// send queues parts as one message; before (may be nil) runs right before the first
// part is written: a host changes its state, then announces the change.
func (w *writer) send(before func(), parts ...[]byte) {
	w.mu.Lock()
	w.queue = appendPieces(w.queue, before, parts)
	w.mu.Unlock()
	w.cond.Signal()
}

// sendBulk queues parts behind every bulk piece queued before; answers may overtake them.
func (w *writer) sendBulk(before func(), parts ...[]byte) {
	w.mu.Lock()
	w.bulk = appendPieces(w.bulk, before, parts)
	w.mu.Unlock()
	w.cond.Signal()
}

func appendPieces(q []piece, before func(), parts [][]byte) []piece {
	for i, p := range parts {
		pc := piece{b: p, first: i == 0}
		if i == 0 {
			pc.before = before
		}
		q = append(q, pc)
	}
	return q
}

func (w *writer) loop() {
	defer close(w.done)
	var batch []piece
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && len(w.bulk) == 0 && !w.closed {
			w.cond.Wait()
		}
		if len(w.queue) == 0 && len(w.bulk) == 0 && w.closed {
			w.mu.Unlock()
			return
		}
		if len(w.queue) > 0 {
			batch, w.queue = w.queue, batch[:0]
		} else {
			// One bulk message at a time (its parts together), then look for answers again.
			n := 1
			for n < len(w.bulk) && !w.bulk[n].first {
				n++
			}
			batch = append(batch[:0], w.bulk[:n]...)
			w.bulk = w.bulk[n:]
		}
		w.mu.Unlock()
		for _, p := range batch {
			if p.before != nil {
				p.before()
			}
			if w.err == nil {
				_, w.err = w.w.Write(p.b)
			}
		}
		if w.err == nil {
			w.err = w.w.Flush()
		}
		clear(batch)
	}
}

// close stops the writer once its queue is written.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cond.Signal()
	<-w.done
}
