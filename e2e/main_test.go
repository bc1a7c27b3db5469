// Package e2e tests the real statesync-sidecar binary over real pipes, exactly as a host
// (Tauri core, Electron main) talks to it.
package e2e

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/internal/sidecarbin"
	"github.com/state-sync/state-sync/sidecar"
)

// binary is the sidecar built once for the whole package (go-plugin's helper process).
var binary string

// exitBound is what the exit tests require: the sidecar is built to exit within 200 ms of
// EOF, shutdown, a signal or its parent's death (engines get 80 ms to stop, the watchdog
// polls every 50 ms; the tests log each time taken), and a hang is seconds or forever.
// The margin keeps a 2-core machine at load 20+ from failing a sidecar that works.
const exitBound = time.Second

func TestMain(m *testing.M) { sidecarbin.Main(m, &binary, "-race") }

// testTimeout bounds every wait in these tests; nothing here should take a fraction of it.
const testTimeout = 20 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// start spawns the sidecar with a host and closes it at the end of the test.
func start(t *testing.T, host *fakeHost, args ...string) *sidecar.Client {
	t.Helper()
	framing := "ndjson"
	for i, a := range args {
		if a == "--framing" && i+1 < len(args) {
			framing = args[i+1]
		}
	}
	c, err := sidecar.Start(context.Background(), sidecar.Options{Path: binary, Args: args, Handler: host, Stderr: os.Stderr, Framing: framing, Record: host.recorder()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(5 * time.Second) })
	return c
}

// call makes a request and fails the test on an error answer.
func call(t *testing.T, c *sidecar.Client, method string, params any) json.RawMessage {
	t.Helper()
	var raw json.RawMessage
	require.NoError(t, c.Call(testContext(t), method, params, &raw), "%s %v", method, params)
	return raw
}

// callErr makes a request that must fail and returns the error answer.
func callErr(t *testing.T, c *sidecar.Client, method string, params any) *sidecar.RPCError {
	t.Helper()
	err := c.Call(testContext(t), method, params, nil)
	require.Error(t, err, "%s %v: want an error answer", method, params)
	var rpcErr *sidecar.RPCError
	require.ErrorAs(t, err, &rpcErr)
	return rpcErr
}

type snapshot struct {
	Revision string          `json:"revision"`
	Epoch    string          `json:"epoch,omitempty"`
	Data     json.RawMessage `json:"data"`
}

type applyParams struct {
	Channel  string          `json:"channel"`
	Topic    string          `json:"topic"`
	Revision string          `json:"revision"`
	Epoch    string          `json:"epoch"`
	Deleted  bool            `json:"deleted"`
	Data     json.RawMessage `json:"data"`
}

type errorParams struct {
	Phase   string `json:"phase"`
	Channel string `json:"channel"`
	Topic   string `json:"topic"`
	Error   struct {
		Code    *int64          `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
	EventRevision string `json:"eventRevision"`
	LocalRevision string `json:"localRevision"`
}

// fakeHost is the host side of a test: it holds the state of host-sourced topics,
// records every apply and error, and lets a test hold getSnapshot answers at a gate.
type fakeHost struct {
	mu        sync.Mutex
	state     map[string]snapshot          // host-sourced topics
	perChan   map[string]snapshot          // channel-sourced answers, by channel
	fetches   map[string]int               // getSnapshot calls by topic
	chanFetch map[string]int               // getSnapshot calls by channel
	applied   map[string][]string          // revisions applied by channel
	hold      chan struct{}                // when not nil, getSnapshot waits for it
	failNext  map[string]*sidecar.RPCError // topic → error to answer once
	hang      bool                         // getSnapshot never answers
	applyErr  map[string]*sidecar.RPCError // channel → apply error
	changed   chan struct{}
	errors    []errorParams
	frames    *frameLog
	onApply   func(applyParams)
	snapshots map[string]func() (any, error) // topic → custom answer
}

func newFakeHost() *fakeHost {
	return &fakeHost{
		state: map[string]snapshot{}, perChan: map[string]snapshot{}, fetches: map[string]int{},
		chanFetch: map[string]int{}, applied: map[string][]string{}, failNext: map[string]*sidecar.RPCError{},
		applyErr: map[string]*sidecar.RPCError{}, changed: make(chan struct{}), frames: &frameLog{},
		snapshots: map[string]func() (any, error){},
	}
}

func (h *fakeHost) recorder() *frameLog { return h.frames }

// set changes a host-sourced topic's state.
func (h *fakeHost) set(topic, revision, data string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state[topic] = snapshot{Revision: revision, Data: json.RawMessage(data)}
}

// signal wakes every waitFor; called with h.mu held.
func (h *fakeHost) signal() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// waitFor blocks until cond (run with h.mu held) is true, or fails the test.
func (h *fakeHost) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		h.mu.Lock()
		ok := cond()
		changed := h.changed
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			h.mu.Lock()
			defer h.mu.Unlock()
			t.Fatalf("timed out waiting for %s; applied=%v fetches=%v errors=%+v", what, h.applied, h.fetches, h.errors)
		}
	}
}

// lastApplied is the last revision applied on channel ("" if none).
func (h *fakeHost) lastApplied(channel string) string {
	revs := h.applied[channel]
	if len(revs) == 0 {
		return ""
	}
	return revs[len(revs)-1]
}

func (h *fakeHost) HandleRequest(ctx context.Context, method string, params json.RawMessage) (any, error) {
	switch method {
	case "getSnapshot":
		var p struct {
			Topic   string `json:"topic"`
			Channel string `json:"channel"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		h.mu.Lock()
		h.fetches[p.Topic]++
		if p.Channel != "" {
			h.chanFetch[p.Channel]++
		}
		hold, hang := h.hold, h.hang
		h.signal()
		h.mu.Unlock()
		if hang {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if custom := h.snapshots[p.Topic]; custom != nil {
			return custom()
		}
		if err := h.failNext[p.Topic]; err != nil {
			delete(h.failNext, p.Topic)
			return nil, err
		}
		if p.Channel != "" {
			if s, ok := h.perChan[p.Channel]; ok {
				return s, nil
			}
		}
		s, ok := h.state[p.Topic]
		if !ok {
			return nil, &sidecar.RPCError{Code: -32000, Message: "no such topic " + p.Topic}
		}
		return s, nil
	case "apply":
		var p applyParams
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := h.applyErr[p.Channel]; err != nil {
			h.signal()
			return nil, err
		}
		h.applied[p.Channel] = append(h.applied[p.Channel], p.Revision)
		if h.onApply != nil {
			h.onApply(p)
		}
		h.signal()
		return map[string]bool{"ok": true}, nil
	}
	return nil, &sidecar.RPCError{Code: -32601, Message: "unexpected method " + method}
}

func (h *fakeHost) HandleNotification(method string, params json.RawMessage) {
	if method != "error" {
		return
	}
	var p errorParams
	_ = json.Unmarshal(params, &p)
	h.mu.Lock()
	h.errors = append(h.errors, p)
	h.signal()
	h.mu.Unlock()
}

// frameLog keeps every frame of a session, for schema checks and quiescence checks.
type frameLog struct {
	mu     sync.Mutex
	frames []string
}

func (l *frameLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frames = append(l.frames, string(p))
	return len(p), nil
}

func (l *frameLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.frames...)
}
