package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/state-sync/state-sync/internal/sidecarbin"
)

// binary is the sidecar built once for the package (go-plugin's helper process).
var binary string

// Not -race: these tests check the client, which `go test -race` instruments.
func TestMain(m *testing.M) { sidecarbin.Main(m, &binary) }

// testTimeout bounds every wait; nothing here should take a fraction of it.
const testTimeout = 20 * time.Second

var framings = []string{"ndjson", "lsp"}

// host is a Handler that records what the sidecar sends and can hold getSnapshot at a
// gate; every change is announced on changed so tests wait on conditions, not time.
type host struct {
	mu        sync.Mutex
	snapshots map[string]string // topic → answer (JSON); channel-sourced: by channel
	fail      map[string]*RPCError
	gate      chan struct{} // when not nil, getSnapshot waits for it (or ctx)
	onCtxDone func()        // when set, a getSnapshot at the gate calls it once its ctx ends
	running   int           // HandleRequest calls running now
	maxRun    int           // the most that ran at once
	calls     map[string]int
	applies   []json.RawMessage
	notes     []string // "method params"
	changed   chan struct{}
}

func newHost() *host {
	return &host{snapshots: map[string]string{}, fail: map[string]*RPCError{}, calls: map[string]int{}, changed: make(chan struct{})}
}

// seen is a copy of what the host has seen, to assert on without holding h.mu (a failed
// assertion must not leave it held: the client's workers need it to finish).
type seen struct {
	calls          map[string]int
	applies, notes []string
	running, max   int
}

func (h *host) seen() seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := seen{calls: map[string]int{}, notes: append([]string(nil), h.notes...), running: h.running, max: h.maxRun}
	for k, v := range h.calls {
		s.calls[k] = v
	}
	for _, a := range h.applies {
		s.applies = append(s.applies, string(a))
	}
	return s
}

// signalLocked wakes every waiter; h.mu is held.
func (h *host) signalLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// waitFor waits until cond (called with h.mu held) is true.
func (h *host) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ok, changed := cond(), h.changed
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("waited %s for %s", testTimeout, what)
		}
	}
}

func (h *host) HandleRequest(ctx context.Context, method string, params json.RawMessage) (any, error) {
	h.mu.Lock()
	h.running++
	h.maxRun = max(h.maxRun, h.running)
	h.calls[method]++
	gate, onCtxDone := h.gate, h.onCtxDone
	h.signalLocked()
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.running--
		h.signalLocked()
		h.mu.Unlock()
	}()
	var p struct {
		Topic   string `json:"topic"`
		Channel string `json:"channel"`
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, err
	}
	switch method {
	case "getSnapshot":
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				if onCtxDone != nil {
					onCtxDone()
				}
				return nil, ctx.Err()
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := h.fail[p.Topic]; err != nil {
			delete(h.fail, p.Topic)
			return nil, err
		}
		key := p.Topic
		if p.Channel != "" {
			key = p.Channel
		}
		s, ok := h.snapshots[key]
		if !ok {
			return nil, &RPCError{Code: -32000, Message: "no snapshot for " + key}
		}
		return json.RawMessage(s), nil
	case "apply":
		h.mu.Lock()
		defer h.mu.Unlock()
		h.applies = append(h.applies, append(json.RawMessage(nil), params...))
		return map[string]bool{"ok": true}, nil
	}
	return nil, &RPCError{Code: -32601, Message: "unexpected method " + method}
}

func (h *host) HandleNotification(method string, params json.RawMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, method+" "+string(params))
	h.signalLocked()
}

// frames is a Record writer (one Write per frame) that announces each frame on its
// host's changed.
type frames struct {
	h    *host
	mu   sync.Mutex
	list []string
}

func (f *frames) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.list = append(f.list, string(p))
	f.mu.Unlock()
	f.h.mu.Lock()
	f.h.signalLocked()
	f.h.mu.Unlock()
	return len(p), nil
}

func (f *frames) count(prefix, substr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.list {
		if strings.HasPrefix(s, prefix) && strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

func start(t *testing.T, h *host, opts Options) *Client {
	t.Helper()
	opts.Path, opts.Handler, opts.Stderr = binary, h, os.Stderr
	if opts.Framing != "" {
		opts.Args = append(opts.Args, "--framing", opts.Framing)
	}
	c, err := Start(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(c.Kill) // a test that failed before its Close; after Close it only waits
	return c
}

// noLeaks checks, after the test and its other cleanups, that no goroutine is left. Call
// it first: cleanups run last-registered first.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

func call(t *testing.T, c *Client, method string, params any) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var raw json.RawMessage
	require.NoError(t, c.Call(ctx, method, params, &raw), "%s %v", method, params)
	return raw
}

// TestProtocol runs the host's side of a session in both framings: initialize, the
// embedded store, a host-sourced channel whose getSnapshot and applies the Handler
// answers, an error notification, and an answer to a garbage frame.
func TestProtocol(t *testing.T) {
	for _, framing := range framings {
		t.Run(framing, func(t *testing.T) {
			noLeaks(t)
			h := newHost()
			rec := &frames{h: h}
			c := start(t, h, Options{Framing: framing, Record: rec})

			var init struct {
				ProtocolVersion string `json:"protocolVersion"`
			}
			require.NoError(t, json.Unmarshal(call(t, c, "initialize", map[string]any{"protocolVersion": "1", "client": map[string]string{"name": "sidecar client test"}}), &init))
			require.Equal(t, "1", init.ProtocolVersion)

			// The store: data comes back as the sidecar sends it.
			var set struct {
				Revision string `json:"revision"`
			}
			require.NoError(t, json.Unmarshal(call(t, c, "state.set", map[string]any{"topic": "prefs", "data": map[string]any{"zoom": 110}}), &set))
			require.Equal(t, "1", set.Revision)
			var get struct {
				Revision string          `json:"revision"`
				Data     json.RawMessage `json:"data"`
			}
			require.NoError(t, json.Unmarshal(call(t, c, "state.get", map[string]string{"topic": "prefs"}), &get))
			require.Equal(t, "1", get.Revision)
			require.JSONEq(t, `{"zoom":110}`, string(get.Data))

			// A host-sourced topic: an invalidate is one getSnapshot, then an apply per
			// channel. The data has keys out of order (jsonrpc2 would sort them): the Handler must
			// see them as sent.
			h.mu.Lock()
			h.snapshots["doc"] = `{"revision":"1","data":1}`
			h.mu.Unlock()
			for _, w := range []string{"w1", "w2", "w3"} {
				call(t, c, "channel.open", map[string]string{"channel": w, "topic": "doc", "source": "host"})
			}
			before := h.seen()
			require.Len(t, before.applies, 3, "applies after 3 opens: %s", before.applies)
			h.mu.Lock()
			h.snapshots["doc"] = `{"revision":"2","data":{"b":1,"a":2.50}}`
			h.mu.Unlock()
			call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "2"})
			h.waitFor(t, "revision 2 applied on 3 channels", func() bool { return len(h.applies) == 6 })
			after := h.seen()
			require.Equal(t, before.calls["getSnapshot"]+1, after.calls["getSnapshot"], "getSnapshot calls for one invalidate of a topic open on 3 channels")
			for _, a := range after.applies[3:] {
				require.Contains(t, a, `"data":{"b":1,"a":2.50}`, "apply params reach the Handler as the sidecar sent them")
			}

			// An error answer keeps its code and data, and the sidecar reports it.
			h.mu.Lock()
			h.fail["doc"] = &RPCError{Code: -32050, Message: "database locked", Data: json.RawMessage(`{"retryAfterMs":50}`)}
			h.mu.Unlock()
			call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "3"})
			// The failed getSnapshot is reported; other reports may follow (a retry finds
			// revision 2, older than the event's 3), so look for it among them.
			noteWith := func(prefix, substr string) string {
				for _, n := range h.notes {
					if strings.HasPrefix(n, prefix) && strings.Contains(n, substr) {
						return n
					}
				}
				return ""
			}
			h.waitFor(t, "an error notification for the failed getSnapshot", func() bool { return noteWith("error ", `"phase":"getSnapshot"`) != "" })
			var note struct {
				Phase string `json:"phase"`
				Error struct {
					Code int64           `json:"code"`
					Data json.RawMessage `json:"data"`
				} `json:"error"`
			}
			h.mu.Lock()
			getSnapshotNote := noteWith("error ", `"phase":"getSnapshot"`)
			h.mu.Unlock()
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(getSnapshotNote, "error ")), &note))
			require.EqualValues(t, -32050, note.Error.Code)
			require.JSONEq(t, `{"retryAfterMs":50}`, string(note.Error.Data))

			// A frame the sidecar cannot parse is answered with a null id: "$error".
			garbage := []byte("{not json\n")
			if framing == "lsp" {
				garbage = []byte("Content-Length: 9\r\n\r\n{not json")
			}
			require.NoError(t, c.WriteRaw(garbage))
			h.waitFor(t, "the answer to a garbage frame", func() bool { return noteWith("$error ", "") != "" })
			h.mu.Lock()
			errNote := noteWith("$error ", "")
			h.mu.Unlock()
			require.True(t, strings.HasPrefix(errNote, `$error {`), "got %q, want a $error with the whole answer", errNote)
			require.Contains(t, errNote, `"id":null`)
			call(t, c, "channel.list", nil) // the connection still serves

			require.NoError(t, c.Close(testTimeout))
			require.Equal(t, 0, c.ExitCode())
			require.Equal(t, h.seen().calls["getSnapshot"], rec.count("<- ", `"method":"getSnapshot"`), "recorded getSnapshot requests")
			require.Equal(t, 1, rec.count("-> ", `"method":"initialize"`), "recorded initialize requests")
		})
	}
}

// TestHandlersAreBounded opens more channel-sourced channels (one getSnapshot each) than
// MaxHandlers while getSnapshot is held: no more than MaxHandlers run at once, though
// the client has read more, and all are answered once released.
func TestHandlersAreBounded(t *testing.T) {
	noLeaks(t)
	const bound, channels = 2, 6
	h := newHost()
	h.gate = make(chan struct{})
	for i := range channels {
		h.snapshots[fmt.Sprint("w", i)] = fmt.Sprintf(`{"revision":"1","data":%d}`, i)
	}
	rec := &frames{h: h}
	c := start(t, h, Options{MaxHandlers: bound, Record: rec})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	opened := make(chan error, channels)
	for i := range channels {
		go func() {
			opened <- c.Call(ctx, "channel.open", map[string]string{"channel": fmt.Sprint("w", i), "topic": "draft", "source": "channel"}, nil)
		}()
	}
	h.waitFor(t, fmt.Sprintf("%d getSnapshot handlers running", bound), func() bool { return h.running == bound })
	// The reader has taken more requests off the pipe; they wait in the queue.
	h.waitFor(t, fmt.Sprintf("more than %d getSnapshot requests read", bound), func() bool {
		return rec.count("<- ", `"method":"getSnapshot"`) > bound
	})
	require.Equal(t, bound, h.seen().running, "handlers running with %d getSnapshot requests read", rec.count("<- ", `"method":"getSnapshot"`))
	close(h.gate)
	for range channels {
		select {
		case err := <-opened:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("the held opens did not finish once released")
		}
	}
	after := h.seen()
	require.Equal(t, bound, after.max, "the most handlers at once, MaxHandlers %d", bound)
	require.Equal(t, channels, after.calls["getSnapshot"])
	require.NoError(t, c.Close(testTimeout))
}

// TestBusyHostAnswersAtOnce: with the workers busy and the queue full, a further request
// is answered CodeHostBusy at once, and the queued one runs once a worker is free.
func TestBusyHostAnswersAtOnce(t *testing.T) {
	noLeaks(t)
	const channels = 4
	h := newHost()
	h.gate = make(chan struct{})
	for i := range channels {
		h.snapshots[fmt.Sprint("w", i)] = fmt.Sprintf(`{"revision":"1","data":%d}`, i)
	}
	rec := &frames{h: h}
	c := start(t, h, Options{MaxHandlers: 1, MaxQueued: 1, Record: rec})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	opened := make(chan error, channels)
	for i := range channels {
		go func() {
			opened <- c.Call(ctx, "channel.open", map[string]string{"channel": fmt.Sprint("w", i), "topic": "draft", "source": "channel"}, nil)
		}()
	}
	busy := fmt.Sprintf(`"code":%d`, CodeHostBusy)
	// The busy answers can be written before the worker's handler has begun: wait for both.
	h.waitFor(t, "2 busy answers while 1 getSnapshot runs and 1 waits", func() bool {
		return rec.count("-> ", busy) == channels-2 && h.running == 1
	})
	require.Equal(t, 1, h.seen().calls["getSnapshot"], "getSnapshot calls while the gate is shut")
	require.Equal(t, channels-2, rec.count("-> ", busy), "busy answers once the one handler runs")
	close(h.gate)
	// Once released, the two opens that got their snapshot each send an apply; with one
	// worker and one queue slot either may be answered busy too, which is the same rule,
	// so only the getSnapshot refusals are counted.
	snapshotBusy := 0
	for range channels {
		select {
		case err := <-opened:
			if err != nil && strings.Contains(err.Error(), fmt.Sprintf("answered getSnapshot with error %d", CodeHostBusy)) {
				snapshotBusy++
			}
		case <-ctx.Done():
			t.Fatal("the opens did not finish once released")
		}
	}
	require.Equal(t, channels-2, snapshotBusy, "opens whose getSnapshot the host answered busy")
	after := h.seen()
	require.Equal(t, 2, after.calls["getSnapshot"], "getSnapshot calls run: the running one and the queued one")
	require.Equal(t, 1, after.max)
	require.NoError(t, c.Close(testTimeout))
}

// TestCloseWaitsForHandlers: a handler still running when the sidecar's output ends sees
// its ctx end, and Close returns only after it has returned, leaving no goroutine.
func TestCloseWaitsForHandlers(t *testing.T) {
	noLeaks(t)
	h := newHost()
	h.gate = make(chan struct{}) // never opened: getSnapshot waits for ctx
	h.snapshots["doc"] = `{"revision":"1","data":1}`
	// The handler, once its ctx ends, holds its return until the test has seen Close wait.
	hook, release := make(chan struct{}), make(chan struct{})
	h.onCtxDone = func() { close(hook); <-release }
	c := start(t, h, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	openErr := make(chan error, 1)
	go func() {
		openErr <- c.Call(ctx, "channel.open", map[string]string{"channel": "w", "topic": "doc", "source": "host"}, nil)
	}()
	h.waitFor(t, "getSnapshot running", func() bool { return h.running == 1 })

	closed := make(chan error, 1)
	go func() { closed <- c.Close(testTimeout) }()
	select {
	case <-hook:
	case <-time.After(testTimeout):
		t.Fatal("the handler's ctx did not end after Close")
	}
	// The sidecar has exited and its output is read: all Close has left is to wait for
	// the handler. Watch until it blocks there, or returns, which is the failure.
	<-c.Exited()
	deadline := time.Now().Add(testTimeout)
	for !blockedIn("sidecar.(*Client).Close") {
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while a handler was still running", err)
		default:
		}
		require.True(t, time.Now().Before(deadline), "Close neither blocked nor returned within %s", testTimeout)
		runtime.Gosched()
	}
	close(release)
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(testTimeout):
		t.Fatal("Close did not return once the handler did")
	}
	require.Zero(t, h.seen().running, "handlers running after Close")
	require.Error(t, <-openErr, "the open the sidecar never finished")
	require.NoError(t, c.Close(testTimeout), "a second Close")
}

// blockedIn says whether a goroutine with fn on its stack is blocked (not running or
// runnable).
func blockedIn(fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, fn) && !strings.Contains(header, "[running]") && !strings.Contains(header, "[runnable]") {
			return true
		}
	}
	return false
}
