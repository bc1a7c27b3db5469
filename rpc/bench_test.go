package rpc

// Microbenchmarks of the sidecar's transport hot paths (go test -run '^$' -bench . ./rpc):
// encoding an apply, reading a message's envelope, and the whole server in process over
// io.Pipe (fan-out and ingest), without a second process. docs/performance.md quotes them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/state-sync/state-sync/engine"
)

// benchData is application-shaped JSON of about size bytes.
func benchData(size int) json.RawMessage {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < size-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item-%d","price":%d.5,"tags":["a","b"]}`, i, i, i%90)
	}
	b.WriteString(`]}`)
	return json.RawMessage(b.String())
}

var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"256KiB", 256 << 10}}

// BenchmarkEncodeApply is one apply request on its way to the host. "direct" is the
// sidecar's path (writeCall); "jsonrpc2" is the path it replaced: params marshalled, then
// jsonrpc2's Request.MarshalJSON (a map), then the old stream's json.Marshal of that, each
// step scanning and copying data again.
func BenchmarkEncodeApply(b *testing.B) {
	for _, sz := range benchSizes {
		p := applyParams{Channel: "settings-window/app-config", Topic: "app-config", Revision: "18446744073709551614", Data: benchData(sz.size)}
		b.Run(sz.name+"/direct", func(b *testing.B) {
			s := newConn(NDJSON, strings.NewReader(""), io.Discard, 16<<20, nil)
			defer runWriter(s)()
			b.SetBytes(int64(len(p.Data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.writeCall("12345", "apply", p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sz.name+"/jsonrpc2", func(b *testing.B) {
			s := newConn(NDJSON, strings.NewReader(""), io.Discard, 16<<20, nil)
			defer runWriter(s)()
			b.SetBytes(int64(len(p.Data)))
			b.ReportAllocs()
			for b.Loop() {
				req := &jsonrpc2.Request{Method: "apply", ID: jsonrpc2.ID{Num: 12345}}
				if err := req.SetParams(p); err != nil {
					b.Fatal(err)
				}
				inner, err := json.Marshal(req)
				if err != nil {
					b.Fatal(err)
				}
				frame, err := json.Marshal(json.RawMessage(inner))
				if err != nil {
					b.Fatal(err)
				}
				if err := s.write(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnvelope reads a message's members raw: splitEnvelope (the sidecar's path) and
// json.Unmarshal (its fallback, and what it did for every message before).
func BenchmarkEnvelope(b *testing.B) {
	frames := []struct{ name, frame string }{
		{"invalidate", `{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"app-config","revision":"42"}}`},
		{"apply-answer", `{"jsonrpc":"2.0","id":12345,"result":{}}`},
	}
	for _, sz := range benchSizes {
		frames = append(frames, struct{ name, frame string }{"snapshot-answer-" + sz.name,
			`{"jsonrpc":"2.0","id":7,"result":{"revision":"42","data":` + string(benchData(sz.size)) + `}}`})
	}
	for _, f := range frames {
		frame := []byte(f.frame)
		b.Run(f.name+"/split", func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				var env envelope
				if !splitEnvelope(frame, &env) {
					b.Fatal("not split")
				}
			}
		})
		b.Run(f.name+"/json.Unmarshal", func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				var env envelope
				if err := json.Unmarshal(frame, &env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAdmit is the read loop's whole step for one message after framing: envelope,
// checks, and the hand-off (a request to the handler, an answer to its caller).
func BenchmarkAdmit(b *testing.B) {
	s := newConn(NDJSON, strings.NewReader(""), io.Discard, 16<<20, nil)
	b.Run("invalidate", func(b *testing.B) {
		frame := []byte(`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"app-config","revision":"42"}}`)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok := s.admit(frame); !ok {
				b.Fatal("not admitted")
			}
		}
	})
	b.Run("apply-answer", func(b *testing.B) {
		frame := []byte(`{"jsonrpc":"2.0","id":12345,"result":{}}`)
		b.ReportAllocs()
		for b.Loop() {
			answer := s.expect("12345")
			s.admit(frame)
			<-answer
		}
	})
}

// BenchmarkServer runs a Server in process over io.Pipe with a minimal host on the other
// end: one op of fanout is "invalidate → every channel applied", one op of ingest is one
// invalidate notification absorbed (every revision stale, as in the harness's ingest).
func BenchmarkServer(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("fanout/channels=%d/1KiB", n), func(b *testing.B) {
			h := newBenchHost(b, n, benchData(1<<10))
			for b.Loop() {
				h.round()
			}
		})
	}
	b.Run("ingest/channels=100", func(b *testing.B) {
		h := newBenchHost(b, 100, benchData(1<<10))
		line := []byte(`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"bench","revision":"1"}}` + "\n")
		const batch = 256
		lines := bytes.Repeat(line, batch)
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += batch {
			h.write(lines[:len(line)*min(batch, b.N-sent)])
		}
		h.call(`"channel.list"`) // answered after every notification before it
	})
}

// benchHost is the host side of BenchmarkServer.
type benchHost struct {
	b     *testing.B
	in    *io.PipeWriter // the server's stdin
	wmu   sync.Mutex
	shut  bool // set at cleanup: late answers are dropped
	data  json.RawMessage
	n     int
	mu    sync.Mutex
	rev   int
	want  int
	got   int
	done  chan struct{}
	reply chan struct{}
}

func newBenchHost(b *testing.B, n int, data json.RawMessage) *benchHost {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	srv := NewServer(Config{CallTimeout: 0})
	served := make(chan struct{})
	go func() {
		_ = srv.Serve(context.Background(), inR, outW)
		close(served)
	}()
	h := &benchHost{b: b, in: inW, data: data, n: n, rev: 1, reply: make(chan struct{}, 1)}
	go h.read(outR)
	b.Cleanup(func() {
		h.wmu.Lock()
		h.shut = true
		h.wmu.Unlock()
		_ = inW.Close()
		<-served
		_ = outW.Close()
	})
	h.mu.Lock()
	h.want, h.got, h.done = 1, 0, make(chan struct{})
	done := h.done
	h.mu.Unlock()
	for i := range n {
		h.write(fmt.Appendf(nil, `{"jsonrpc":"2.0","id":"open-%d","method":"channel.open","params":{"channel":"c%d","topic":"bench","source":"host"}}`+"\n", i, i))
	}
	<-done
	return h
}

func (h *benchHost) write(b []byte) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if h.shut {
		return
	}
	if _, err := h.in.Write(b); err != nil {
		h.b.Error(err)
	}
}

// call sends a request and waits for its answer.
func (h *benchHost) call(method string) {
	h.write([]byte(`{"jsonrpc":"2.0","id":"call","method":` + method + `}` + "\n"))
	<-h.reply
}

// round bumps the revision, invalidates, and waits until every channel applied it.
func (h *benchHost) round() {
	h.mu.Lock()
	h.rev++
	h.want, h.got, h.done = h.rev, 0, make(chan struct{})
	done, rev := h.done, h.rev
	h.mu.Unlock()
	h.write(fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"bench","revision":"%d"}}`+"\n", rev))
	<-done
}

func (h *benchHost) read(out io.Reader) {
	r := bufio.NewReaderSize(out, 1<<20)
	answers := make(chan []byte, 4096)
	go func() { // answers go through their own goroutine: never block the reader
		for a := range answers {
			h.write(a)
		}
	}()
	defer close(answers)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Revision engine.Revision `json:"revision"`
			} `json:"params"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			h.b.Error(err)
			return
		}
		switch msg.Method {
		case "getSnapshot":
			h.mu.Lock()
			rev := h.rev
			h.mu.Unlock()
			answers <- fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":{"revision":"%d","data":%s}}`+"\n", msg.ID, rev, h.data)
		case "apply":
			answers <- fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":{}}`+"\n", msg.ID)
			h.mu.Lock()
			if string(msg.Params.Revision) == fmt.Sprint(h.want) {
				h.got++
				if h.got == h.n {
					close(h.done)
				}
			}
			h.mu.Unlock()
		case "":
			if string(msg.ID) == `"call"` {
				h.reply <- struct{}{}
			}
		}
	}
}

// BenchmarkReadRequest reads one state.set request carrying data: "jsonrpc2" is
// jsonrpc2.Request.UnmarshalJSON, what jsonrpc2.Conn does with every request (params
// decoded into map[string]any, then marshalled again); "split" is splitEnvelope, the
// sidecar's read path (one validating pass, params sliced out raw). docs/design-rpc.md
// quotes it.
func BenchmarkReadRequest(b *testing.B) {
	for _, sz := range benchSizes {
		frame := []byte(`{"jsonrpc":"2.0","id":7,"method":"state.set","params":{"topic":"app-config","data":` + string(benchData(sz.size)) + `}}`)
		b.Run(sz.name+"/jsonrpc2", func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				var req jsonrpc2.Request
				if err := json.Unmarshal(frame, &req); err != nil || req.Params == nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sz.name+"/split", func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				var env envelope
				if !splitEnvelope(frame, &env) || len(env.Params) == 0 {
					b.Fatal("not split")
				}
			}
		})
	}
}

// jsonrpc2's Request.UnmarshalJSON does not keep params as they were sent: members are
// reordered and strings re-escaped. The sidecar must pass data through untouched, which
// is one reason its read path does not use it (docs/design-rpc.md).
func TestJSONRPC2RequestRewritesParams(t *testing.T) {
	params := `{"z":1,"a":"caf\u00e9","n":1.50}`
	frame := `{"jsonrpc":"2.0","id":1,"method":"state.set","params":` + params + `}`
	var req jsonrpc2.Request
	if err := json.Unmarshal([]byte(frame), &req); err != nil {
		t.Fatal(err)
	}
	if got := string(*req.Params); got == params {
		t.Fatalf("jsonrpc2 kept params byte for byte (%s): docs/design-rpc.md must be updated", got)
	}
	var env envelope
	if !splitEnvelope([]byte(frame), &env) || string(env.Params) != params {
		t.Fatalf("splitEnvelope: got params %s, want %s", env.Params, params)
	}
}
