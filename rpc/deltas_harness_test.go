package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/internal/jsonpatch"
)

// windowHost plays the host of windows that take deltas as the SDK does: each channel
// keeps its last applied data and revision; an apply with a patch is checked against
// that revision and applied to a copy, or answered -32011. Answers to the test's own
// requests are handed to request.
type windowHost struct {
	t      *testing.T
	server *Server

	writeMu sync.Mutex
	in      io.WriteCloser

	mu       sync.Mutex
	changed  *sync.Cond
	windows  map[string]*window
	applies  []map[string]any                   // every apply's params, in order
	snapshot func(topic, channel string) string // getSnapshot's result; channel is "" for source host
	// tamper, when set, runs before a delta apply is checked: a test uses it to make the
	// window lose track of its state.
	tamper func(w *window, params map[string]any)

	answers chan map[string]any
	nextID  int
	done    chan struct{}
}

type window struct {
	revision string
	data     json.RawMessage
	applies  int
	deltas   int
	rejected []string // reasons of the -32011 answers
}

// startWindowHost runs a server with cfg, answered by a windowHost.
func startWindowHost(t *testing.T, cfg Config) *windowHost {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &windowHost{t: t, server: NewServer(cfg), in: inW, windows: map[string]*window{}, answers: make(chan map[string]any, 16), done: make(chan struct{})}
	h.changed = sync.NewCond(&h.mu)
	served := make(chan error, 1)
	go func() { served <- h.server.Serve(context.Background(), inR, outW) }()
	go h.read(bufio.NewReaderSize(outR, 1<<20))
	t.Cleanup(func() {
		_ = inW.Close()
		select {
		case <-served:
		case <-time.After(serveBound):
			t.Error("Serve did not return after its input closed")
		}
		_ = outR.Close()
		<-h.done
	})
	return h
}

func (h *windowHost) write(msg any) {
	b, err := json.Marshal(msg)
	require.NoError(h.t, err)
	h.writeMu.Lock()
	defer h.writeMu.Unlock()
	_, _ = h.in.Write(append(b, '\n'))
}

func (h *windowHost) read(out *bufio.Reader) {
	defer close(h.done)
	for {
		line, err := out.ReadBytes('\n')
		if err != nil {
			return
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(line, &msg) != nil {
			continue
		}
		switch {
		case msg.Method == "apply":
			h.write(h.apply(msg.ID, msg.Params))
		case msg.Method == "getSnapshot":
			var p struct{ Topic, Channel string }
			_ = json.Unmarshal(msg.Params, &p)
			h.mu.Lock()
			result := h.snapshot(p.Topic, p.Channel)
			h.mu.Unlock()
			h.write(map[string]any{"jsonrpc": "2.0", "id": msg.ID, "result": json.RawMessage(result)})
		case msg.Method == "":
			var answer map[string]any
			_ = json.Unmarshal(line, &answer)
			h.answers <- answer
		}
	}
}

// apply is what the SDK does with an apply: a full one replaces the data; a delta is
// checked against the window's revision and applied to a copy, or refused with -32011.
func (h *windowHost) apply(id json.RawMessage, raw json.RawMessage) map[string]any {
	var p map[string]any
	_ = json.Unmarshal(raw, &p)
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.changed.Broadcast()
	h.applies = append(h.applies, p)
	name := p["channel"].(string)
	w := h.windows[name]
	if w == nil {
		w = &window{}
		h.windows[name] = w
	}
	ok := map[string]any{"jsonrpc": "2.0", "id": id, "result": map[string]any{}}
	patch, isDelta := p["patch"]
	if !isDelta {
		var full struct{ Data json.RawMessage }
		_ = json.Unmarshal(raw, &full)
		w.revision, w.data = p["revision"].(string), full.Data
		w.applies++
		return ok
	}
	if h.tamper != nil {
		h.tamper(w, p)
	}
	reject := func(reason string) map[string]any {
		w.rejected = append(w.rejected, reason)
		return map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": CodeDeltaRejected, "message": "delta rejected: " + reason, "data": map[string]any{"reason": reason, "localRevision": w.revision}}}
	}
	if w.data == nil || w.revision != p["baseRevision"] {
		return reject("baseMismatch")
	}
	b, _ := json.Marshal(patch)
	ops, err := jsonpatch.DecodePatch(b)
	if err != nil {
		return reject("patchFailed")
	}
	next, err := jsonpatch.Apply(w.data, ops)
	if err != nil {
		return reject("patchFailed")
	}
	w.revision, w.data = p["revision"].(string), next
	w.applies++
	w.deltas++
	return ok
}

// request sends a request and returns its answer.
func (h *windowHost) request(method string, params any) map[string]any {
	h.t.Helper()
	h.nextID++
	id := fmt.Sprintf("t%d", h.nextID)
	h.write(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	select {
	case answer := <-h.answers:
		require.Equal(h.t, id, answer["id"], "answers come in request order here: got %v", answer)
		return answer
	case <-time.After(serveBound):
		h.t.Fatalf("no answer to %s within %v", method, serveBound)
		return nil
	}
}

// result is request's result, failing the test on an error answer.
func (h *windowHost) result(method string, params any) map[string]any {
	h.t.Helper()
	answer := h.request(method, params)
	result, ok := answer["result"].(map[string]any)
	require.True(h.t, ok, "%s answered %v", method, answer)
	return result
}

// waitWindow waits until channel's window is at revision, and returns a copy of it.
func (h *windowHost) waitWindow(channel, revision string) window {
	h.t.Helper()
	deadline := time.Now().Add(serveBound)
	timer := time.AfterFunc(serveBound, func() { h.mu.Lock(); h.changed.Broadcast(); h.mu.Unlock() })
	defer timer.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		if w := h.windows[channel]; w != nil && w.revision == revision {
			return *w
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("window %s did not reach revision %s within %v (at %+v)", channel, revision, serveBound, h.windows[channel])
		}
		h.changed.Wait()
	}
}

// appliesTo returns the applies sent to channel so far.
func (h *windowHost) appliesTo(channel string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, p := range h.applies {
		if p["channel"] == channel {
			out = append(out, p)
		}
	}
	return out
}

func (h *windowHost) status(channel string) map[string]any {
	h.t.Helper()
	return h.result("channel.status", map[string]any{"channel": channel})
}

// bigState is a JSON object of n members of about 100 bytes each, member i holding
// value(i).
func bigState(n int, value func(i int) string) json.RawMessage {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"key%03d":{"label":%q,"value":%s}`, i, strings.Repeat("x", 80), value(i))
	}
	b.WriteByte('}')
	return json.RawMessage(b.String())
}

// requireSameJSON compares two JSON documents by value.
func requireSameJSON(t *testing.T, want, got json.RawMessage) {
	t.Helper()
	var w, g any
	require.NoError(t, json.Unmarshal(want, &w))
	require.NoError(t, json.Unmarshal(got, &g), "got %s", got)
	require.Equal(t, w, g)
}

// waitLocalRevision waits until channel.status says channel is at revision.
func (h *windowHost) waitLocalRevision(channel, revision string) {
	h.t.Helper()
	deadline := time.Now().Add(serveBound)
	for {
		status := h.status(channel)
		if status["localRevision"] == revision {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("channel %s did not reach localRevision %s within %v: %v", channel, revision, serveBound, status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
