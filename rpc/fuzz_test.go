package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/state-sync/state-sync/store"
)

// Fuzz targets for what the server reads from the host: NDJSON and LSP framing (any
// bytes, after which a valid initialize must be answered) and the params of every
// method. The server runs in process over io.Pipe. `go test` runs the seed corpora
// (testdata/fuzz/<FuzzName>/ and the f.Add seeds); `task test:fuzz` and `task fuzz` run
// the fuzzer.
//
// Properties, on every input: the server writes only well-formed JSON-RPC messages, never
// an internal error (-32603: a bug, a recovered panic) nor an undocumented code; it
// answers the next valid request (unless the input itself asked for shutdown); and Serve
// returns promptly once its input ends.

const fuzzBound = 10 * time.Second // failure bound; a healthy iteration takes milliseconds

// fuzzCodes are the error codes of docs/protocol.md.
var fuzzCodes = map[int64]bool{-32700: true, -32600: true, -32601: true, -32602: true,
	-32001: true, -32002: true, -32003: true, -32004: true, -32005: true, -32006: true,
	-32007: true, -32008: true, -32009: true}

// fuzzHost runs one server over pipes and plays its host: it reads everything the server
// writes, checks it, and answers the server's getSnapshot and apply calls.
type fuzzHost struct {
	t       *testing.T
	framing Framing
	in      *io.PipeWriter
	served  chan struct{}
	answers chan []byte
	// serveErr is what Serve returned; written before served is closed, read after.
	serveErr error
	readDone chan struct{} // closed once everything the server wrote has been read

	wmu sync.Mutex // one frame at a time on the server's input

	mu        sync.Mutex
	responses map[string]json.RawMessage // id → the whole answer
	changed   chan struct{}
	problems  []string
}

func newFuzzHost(t *testing.T, framing Framing, maxBytes int) *fuzzHost {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &fuzzHost{t: t, framing: framing, in: inW, served: make(chan struct{}), answers: make(chan []byte, 256), readDone: make(chan struct{}),
		responses: map[string]json.RawMessage{}, changed: make(chan struct{})}
	srv := NewServer(Config{Framing: framing, MaxMessageBytes: maxBytes, CallTimeout: 20 * time.Millisecond,
		MaxChannels: 16, MaxInFlight: 16, Store: store.NewMemory(1 << 16)})
	go func() {
		defer close(h.served)
		h.serveErr = srv.Serve(context.Background(), inR, outW)
		_ = inR.CloseWithError(io.ErrClosedPipe) // writes to a stopped server fail, never block
		_ = outW.Close()
	}()
	go h.read(bufio.NewReaderSize(outR, 1<<16))
	go h.answer()
	return h
}

// write sends bytes as they are. An error means the server stopped reading (it shut
// down); the caller finds out through served.
func (h *fuzzHost) write(b []byte) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	_, _ = h.in.Write(b)
}

// frame wraps one message in the server's framing.
func (h *fuzzHost) frame(msg string) []byte {
	if h.framing == LSP {
		return fmt.Appendf(nil, "Content-Length: %d\r\n\r\n%s", len(msg), msg)
	}
	return []byte(msg + "\n")
}

func (h *fuzzHost) problem(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.problems) < 10 {
		h.problems = append(h.problems, fmt.Sprintf(format, args...))
	}
}

func (h *fuzzHost) read(r *bufio.Reader) {
	defer close(h.readDone)
	defer close(h.answers)
	for {
		msg, err := h.readFrame(r)
		if err != nil {
			return
		}
		var env struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Method  string          `json:"method"`
			Result  json.RawMessage `json:"result"`
			Error   *struct {
				Code    *int64 `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(msg, &env); err != nil || env.JSONRPC != "2.0" {
			h.problem("the server wrote a frame that is not a JSON-RPC 2.0 message: %.300q (%v)", msg, err)
			continue
		}
		switch {
		case env.Method == "getSnapshot" && len(env.ID) > 0:
			h.queue(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"revision":"1","data":{"fuzz":true}}}`, env.ID))
		case env.Method == "apply" && len(env.ID) > 0:
			h.queue(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":true}`, env.ID))
		case env.Method == "error" && len(env.ID) == 0:
		case env.Method != "":
			h.problem("the server sent an unexpected %s: %.300s", env.Method, msg)
		case env.Error != nil:
			switch {
			case env.Error.Code == nil || env.Error.Message == "":
				h.problem("an error answer without code or message: %.300s", msg)
			case *env.Error.Code == -32603:
				h.problem("internal error (a bug): %.500s", msg)
			case !fuzzCodes[*env.Error.Code]:
				h.problem("undocumented error code %d: %.300s", *env.Error.Code, msg)
			}
			fallthrough
		default:
			h.mu.Lock()
			h.responses[string(env.ID)] = msg
			close(h.changed)
			h.changed = make(chan struct{})
			h.mu.Unlock()
		}
	}
}

func (h *fuzzHost) readFrame(r *bufio.Reader) ([]byte, error) {
	if h.framing != LSP {
		line, err := r.ReadBytes('\n')
		return bytes.TrimRight(line, "\r\n"), err
	}
	length := -1
	for {
		header, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		header = strings.TrimRight(header, "\r\n")
		if header == "" {
			break
		}
		if v, ok := strings.CutPrefix(header, "Content-Length: "); ok {
			length, _ = strconv.Atoi(v)
		}
	}
	if length < 0 {
		h.problem("the server wrote an LSP frame without Content-Length")
		return nil, io.ErrUnexpectedEOF
	}
	b := make([]byte, length)
	_, err := io.ReadFull(r, b)
	return b, err
}

// queue hands an answer to the answering goroutine; the reader never blocks on a write
// (the server may be blocked writing to it).
func (h *fuzzHost) queue(answer string) {
	select {
	case h.answers <- []byte(answer):
	default: // the call will time out: fine
	}
}

func (h *fuzzHost) answer() {
	for a := range h.answers {
		h.write(h.frame(string(a)))
	}
}

// await waits for the answer to one of ids, and reports false if the server stopped
// first (a shutdown in the input).
func (h *fuzzHost) await(ids ...string) (json.RawMessage, bool) {
	deadline := time.After(fuzzBound)
	for {
		h.mu.Lock()
		for _, id := range ids {
			if r, ok := h.responses[id]; ok {
				h.mu.Unlock()
				return r, true
			}
		}
		changed := h.changed
		h.mu.Unlock()
		select {
		case <-changed:
		case <-h.served:
			return nil, false
		case <-deadline:
			h.t.Fatalf("no answer to %v within %v: the server hangs", ids, fuzzBound)
		}
	}
}

// finish ends the input and checks that Serve returns and that nothing went wrong.
func (h *fuzzHost) finish(input []byte) {
	h.t.Helper()
	_ = h.in.Close()
	select {
	case <-h.served:
	case <-time.After(fuzzBound):
		h.t.Fatalf("Serve did not return within %v of its input ending; input %.300q", fuzzBound, input)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.problems) > 0 {
		h.t.Fatalf("input %.300q:\n%s", input, strings.Join(h.problems, "\n"))
	}
}

// askedForShutdown: the input may itself hold a shutdown request, after which not being
// answered is right. Method names are JSON strings: escapes count too.
func askedForShutdown(input []byte) bool {
	return bytes.Contains(input, []byte("shutdown")) || bytes.Contains(input, []byte(`\u`))
}

const fuzzInitialize = `{"jsonrpc":"2.0","id":"%s","method":"initialize","params":{"protocolVersion":"1"}}`

func requireInitialized(t *testing.T, h *fuzzHost, input []byte, ids ...string) {
	t.Helper()
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = strconv.Quote(id)
	}
	answer, ok := h.await(quoted...)
	if !ok {
		var fatal *framingError
		if errors.As(h.serveErr, &fatal) {
			// An LSP header the stream cannot go on from: answered, then the end.
			select {
			case <-h.readDone:
			case <-time.After(fuzzBound):
				t.Fatalf("the server's output did not end within %v of Serve returning", fuzzBound)
			}
			h.mu.Lock()
			last := h.responses["null"]
			h.mu.Unlock()
			if !bytes.Contains(last, []byte(fmt.Sprintf(`"code":%d`, fatal.code))) {
				t.Fatalf("the server stopped on %v without answering it (last id-null answer %s); input %.300q", fatal, last, input)
			}
			return
		}
		if !askedForShutdown(input) {
			t.Fatalf("the server stopped without a shutdown request; input %.300q", input)
		}
		return
	}
	if !bytes.Contains(answer, []byte(`"protocolVersion":"1"`)) && !(askedForShutdown(input) && bytes.Contains(answer, []byte("-32008"))) {
		t.Fatalf("initialize after the input: got %s; input %.300q", answer, input)
	}
}

var fuzzFramingSeeds = []string{
	`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1"}}`,
	`{"jsonrpc":"2.0","id":2,"method":"state.set","params":{"topic":"t","data":{"a":[1,2,3]}}}`,
	`{"jsonrpc":"2.0","id":3,"method":"channel.open","params":{"channel":"w","topic":"t"}}`,
	`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"t","revision":"007"}}`,
	`{"jsonrpc":"2.0","id":4,"result":{"revision":"1","data":null}}`,
	`{"jsonrpc":"2.0","id":5,"error":{"code":-32000,"message":"x"}}`,
	`[{"jsonrpc":"2.0","id":1,"method":"initialize"}]`,
	`{"jsonrpc":"2.0","id":`, "not json", "\r\n\r\n", "\x00\xff\xfe",
	`{"jsonrpc":"2.0","id":{"a":1},"method":"channel.list"}`,
	`{"jsonrpc":"2.0","id":-1,"method":"channel.list"}`,
	`{"jsonrpc":"2.0","id":1e400,"method":"channel.list"}`,
	`{"jsonrpc":"2.0","id":"\ud800","method":"channel.list"}`,
	strings.Repeat("[", 20000),
	"Content-Length: 5\r\n\r\n{}{}{",
	"Content-Length: -1\r\n\r\n",
	"Content-Length: 99999999999999999999\r\n\r\n",
	"content-length:2\r\nContent-Type: x\r\n\r\n{}",
	// Bytes that are not UTF-8: in data, in an answer to one of the server's calls, in the
	// id, in a member name.
	"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"state.set\",\"params\":{\"topic\":\"t\",\"data\":\"\xc3(\xff\"}}",
	"{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"result\":{\"revision\":\"2\",\"data\":\"\xc3(\"}}",
	"{\"jsonrpc\":\"2.0\",\"id\":\"\xff\",\"method\":\"channel.list\"}",
	"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"invalidate\",\"params\":{\"t\xe2\x82\":\"t\",\"revision\":\"1\"}}",
	"{\"jsonrpc\":\"2.0\",\"method\":\"invalidate\",\"params\":{\"topic\":\"\xed\xa0\x80\",\"revision\":\"1\"}}", // an encoded surrogate
	// Over the limits: a name over engine.MaxNameBytes, a line and Content-Lengths over
	// the message limit (2048 in these targets), and lengths that are no byte count.
	`{"jsonrpc":"2.0","id":8,"method":"state.set","params":{"topic":"` + strings.Repeat("n", 1025) + `","data":1}}`,
	`{"jsonrpc":"2.0","id":9,"method":"state.set","params":{"topic":"t","data":"` + strings.Repeat("x", 2100) + "\xff\"}}",
	"Content-Length: 4611686018427387904\r\n\r\n",
	"Content-Length: 2049\r\n\r\n{}",
	"Content-Length: +2\r\n\r\n{}",
	"Content-Length: 2 2\r\n\r\n{}",
}

// FuzzNDJSONFraming writes arbitrary bytes to a server speaking NDJSON, ends the line
// they may have left open, and requires the next initialize to be answered.
func FuzzNDJSONFraming(f *testing.F) {
	for _, s := range fuzzFramingSeeds {
		f.Add([]byte(s + "\n" + s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		h := newFuzzHost(t, NDJSON, 2048)
		h.write(input)
		h.write([]byte("\n" + fmt.Sprintf(fuzzInitialize, "fuzz-final") + "\n"))
		requireInitialized(t, h, input, "fuzz-final")
		h.finish(input)
	})
}

// FuzzLSPFraming writes arbitrary bytes to a server speaking LSP framing, then as many
// copies of a valid initialize frame as it takes to get past whatever frame the garbage
// left open, and requires one of them to be answered. LSP has no resynchronisation mark:
// a reader that lands mid-body reads the rest of the body and the next header as one
// header line, so the copies are separated by a blank line (which a reader in step
// answers as a frame without Content-Length). A Content-Length over the limit or that is
// no byte count ends the server (answered, then Serve returns the framing error): a frame
// it would have to skip by reading it could declare more bytes than will ever come.
func FuzzLSPFraming(f *testing.F) {
	for _, s := range fuzzFramingSeeds {
		f.Add([]byte(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(s), s)))
		f.Add([]byte(s))
	}
	const maxBytes = 2048
	const cover = 2 * maxBytes // a frame within the limit ends inside the copies
	f.Fuzz(func(t *testing.T, input []byte) {
		h := newFuzzHost(t, LSP, maxBytes)
		h.write(input)
		var ids []string
		var tail []byte
		for i := 0; len(tail) < cover+4*256; i++ {
			id := fmt.Sprintf("fuzz-final-%d", i)
			ids = append(ids, id)
			tail = append(tail, "\r\n"...)
			tail = append(tail, h.frame(fmt.Sprintf(fuzzInitialize, id))...)
		}
		h.write(tail)
		requireInitialized(t, h, input, ids...)
		h.finish(input)
	})
}

// fuzzMethods are the host's methods; shutdown is left out (it ends the server, which
// the framing targets cover).
// state.patch comes last, so that the stored corpus keeps naming the methods it named.
var fuzzMethods = []string{"initialize", "channel.open", "channel.close", "channel.refresh", "channel.status", "channel.list", "invalidate", "state.set", "state.get", "no.such.method", "state.patch"}

// FuzzMethodParams sends one request with arbitrary params to each method, on a server
// with open channels of every source, and requires a well-formed answer (never -32603),
// then a working server.
func FuzzMethodParams(f *testing.F) {
	for i := range fuzzMethods {
		for _, p := range []string{`{}`, `null`, `[]`, `"x"`, `{"channel":"w","topic":"t"}`, `{"channel":"h","topic":"h","source":"host"}`,
			`{"channel":"w"}`, `{"channel":"h"}`, `{"topic":"h","revision":"2"}`, `{"topic":"t","revision":"2","channel":"w"}`,
			`{"topic":"t","data":{"n":1},"expectedRevision":"1"}`, `{"topic":"t"}`, `{"protocolVersion":"1"}`,
			`{"channel":"n","topic":"c","source":"channel","options":{"callTimeoutMs":5,"resyncIntervalMs":100,"retry":{"maxAttempts":2,"jitter":0.5}}}`,
			`{"channel":"x","topic":"t","options":{"retry":{"multiplier":1e308,"maxDelayMs":-1}}}`,
			`{"topic":"h","revision":"18446744073709551615","epoch":"e","timestampMs":1e400}`,
			// Bytes that are not UTF-8, and names at and over engine.MaxNameBytes.
			"{\"topic\":\"t\",\"data\":\"\xc3(\xff\"}", "{\"channel\":\"\xff\",\"topic\":\"t\"}", "{\"topic\":\"h\xc3\",\"revision\":\"2\"}",
			`{"channel":"` + strings.Repeat("w", 1025) + `","topic":"t"}`, `{"channel":"x","topic":"` + strings.Repeat("t", 1024) + `"}`,
			`{"topic":"` + strings.Repeat("h", 1025) + `","revision":"2"}`, `{"topic":"\ufeff","data":1}`, `{"topic":"\u0085","data":1}`,
			// Deltas (issue 15): options deltas and paths, state.patch.
			`{"channel":"d","topic":"t","options":{"deltas":true,"paths":["/a","/b~1c"]}}`, `{"channel":"d","topic":"t","options":{"paths":["","x","/a~2"]}}`,
			`{"topic":"t","patch":[{"op":"replace","path":"","value":{"a":[1,{"b":2}]}}]}`,
			`{"topic":"t","patch":[{"op":"test","path":"/a/1/b","value":2},{"op":"move","from":"/a","path":"/c"}],"expectedRevision":"2"}`,
			`{"topic":"t","patch":[{"op":"add","path":"/-","value":1},{"op":"copy","from":"/x","path":"/y"}]}`, `{"topic":"t","patch":{}}`} {
			f.Add(uint8(i), false, []byte(p))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, notify bool, params []byte) {
		method := fuzzMethods[int(which)%len(fuzzMethods)]
		if !json.Valid(params) {
			params, _ = json.Marshal(string(params)) // not JSON: send it as a string
		}
		h := newFuzzHost(t, NDJSON, 1<<16)
		setup := []string{
			`{"jsonrpc":"2.0","id":"s1","method":"state.set","params":{"topic":"t","data":1}}`,
			`{"jsonrpc":"2.0","id":"s2","method":"channel.open","params":{"channel":"w","topic":"t"}}`,
			`{"jsonrpc":"2.0","id":"s3","method":"channel.open","params":{"channel":"h","topic":"h","source":"host"}}`,
			`{"jsonrpc":"2.0","id":"s4","method":"channel.open","params":{"channel":"c","topic":"c","source":"channel"}}`,
		}
		for i, line := range setup {
			h.write([]byte(line + "\n"))
			if _, ok := h.await(fmt.Sprintf(`"s%d"`, i+1)); !ok {
				t.Fatal("the server stopped during setup")
			}
		}
		msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "fuzz", "method": method, "params": json.RawMessage(params)})
		if notify {
			msg, _ = json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": json.RawMessage(params)})
		}
		h.write(append(msg, '\n'))
		if !notify {
			if _, ok := h.await(`"fuzz"`); !ok {
				t.Fatalf("the server stopped after %s", msg)
			}
		}
		h.write([]byte(fmt.Sprintf(fuzzInitialize, "fuzz-final") + "\n"))
		requireInitialized(t, h, nil, "fuzz-final")
		h.finish(msg)
	})
}
