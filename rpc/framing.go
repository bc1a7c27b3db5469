package rpc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sourcegraph/jsonrpc2"
)

// Framing is how messages are delimited on the byte stream.
type Framing string

const (
	// NDJSON is one JSON-RPC message per line (the default).
	NDJSON Framing = "ndjson"
	// LSP is Content-Length headers, as the Language Server Protocol and vscode-jsonrpc.
	LSP Framing = "lsp"
)

// ParseFraming accepts the --framing flag's values.
func ParseFraming(s string) (Framing, error) {
	switch Framing(s) {
	case NDJSON, LSP:
		return Framing(s), nil
	}
	return "", fmt.Errorf("unknown framing %q: want ndjson or lsp", s)
}

var errTooLarge = errors.New("message too large")

// stream is the jsonrpc2.ObjectStream of the sidecar. Beyond framing it does three things
// the stock codecs do not:
//
//   - a malformed frame is answered right here (-32700 or -32600, id null when unknown)
//     and reading goes on, where the stock codec would close the connection;
//   - requests never reach jsonrpc2's decoder, which round-trips params through
//     map[string]any (that would decode every snapshot's data) and costs several decodes
//     per message. The stream parses the envelope only and hands each request to the
//     server with its params raw, on the reading goroutine, in arrival order (see start);
//     jsonrpc2 only writes the replies;
//   - calls to the host (getSnapshot, apply) bypass jsonrpc2 both ways: writeCall encodes
//     them directly, the snapshot's data written as it is, never re-encoded or copied
//     (jsonrpc2 would compact it four times per apply), and the stream hands each answer
//     to the waiting caller itself (see expect);
//   - --trace copies every frame in and out to the trace writer.
type stream struct {
	framing  Framing
	r        *bufio.Reader
	maxBytes int
	trace    *tracer

	wmu     sync.Mutex
	w       *bufio.Writer
	writers atomic.Int32 // writeFrame calls writing or waiting for wmu; the last one flushes
	closer  io.Closer
	plain   atomic.Pointer[plainData] // the last data checked by lineSafe

	mu       sync.Mutex
	calls    map[string]chan callAnswer // calls to the host waiting for their answer, by id
	gone     chan struct{}              // closed once the input has ended or the stream is closed
	goneOnce sync.Once

	ready    chan struct{}                                       // closed by start: ReadObject waits for it
	dispatch func(req *jsonrpc2.Request, params json.RawMessage) // set by start
}

// callAnswer is the host's answer to one of our calls: a raw result, or its error.
type callAnswer struct {
	result json.RawMessage
	err    *jsonrpc2.Error
}

func newStream(framing Framing, r io.Reader, w io.Writer, maxBytes int, trace *tracer) *stream {
	s := &stream{
		framing:  framing,
		r:        bufio.NewReaderSize(r, 64*1024),
		w:        bufio.NewWriterSize(w, 64*1024),
		maxBytes: maxBytes,
		trace:    trace,
		calls:    map[string]chan callAnswer{},
		gone:     make(chan struct{}),
		ready:    make(chan struct{}),
	}
	if c, ok := r.(io.Closer); ok {
		s.closer = c
	}
	return s
}

// envelope is a JSON-RPC message with every member kept raw.
type envelope struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// start lets ReadObject run: every request is handed to dispatch right on the reading
// goroutine, in arrival order, with its params raw.
func (s *stream) start(dispatch func(req *jsonrpc2.Request, params json.RawMessage)) {
	s.dispatch = dispatch
	close(s.ready)
}

// ReadObject implements jsonrpc2.ObjectStream. It reads every frame, hands requests to
// dispatch and answers to their callers, answers malformed frames, and returns only when
// the input ends: jsonrpc2 never sees an incoming message.
func (s *stream) ReadObject(any) error {
	<-s.ready
	for {
		frame, err := s.readFrame()
		if errors.Is(err, errTooLarge) {
			s.writeError(nil, jsonrpc2.CodeInvalidRequest, fmt.Sprintf("message larger than the limit of %d bytes (--max-message-bytes): it was skipped", s.maxBytes))
			continue
		}
		if err != nil {
			s.end()
			return err
		}
		s.trace.frame("<-", frame)
		if req, params, ok := s.admit(frame); ok {
			s.dispatch(req, params)
		}
	}
}

// admit checks a frame and returns the request it carries with its raw params; it hands
// an answer to one of our calls to its caller, and answers a malformed frame with an
// error. It returns false for anything but a request.
func (s *stream) admit(frame []byte) (*jsonrpc2.Request, json.RawMessage, bool) {
	trimmed := bytes.TrimSpace(frame)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if !json.Valid(trimmed) {
			s.writeError(nil, jsonrpc2.CodeParseError, "parse error: "+syntaxError(trimmed))
			return nil, nil, false
		}
		s.writeError(nil, jsonrpc2.CodeInvalidRequest, "batches are not supported: send one message per line")
		return nil, nil, false
	}
	var env envelope
	if splitEnvelope(trimmed, &env) {
		// the common path; anything else goes through json.Unmarshal and its messages
	} else if err := json.Unmarshal(trimmed, &env); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			s.writeError(nil, jsonrpc2.CodeInvalidRequest, "invalid request: a JSON-RPC message is a JSON object")
		} else {
			s.writeError(nil, jsonrpc2.CodeParseError, "parse error: "+syntaxError(trimmed))
		}
		return nil, nil, false
	}
	id, idOK := canonicalID(env.ID)
	if string(env.JSONRPC) != `"2.0"` {
		s.writeError(idOrNull(id, idOK), jsonrpc2.CodeInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`)
		return nil, nil, false
	}
	isRequest := len(env.Method) > 0
	isResponse := len(env.Result) > 0 || len(env.Error) > 0
	switch {
	case isRequest && !isResponse:
		var method string
		if json.Unmarshal(env.Method, &method) != nil || method == "" {
			s.writeError(idOrNull(id, idOK), jsonrpc2.CodeInvalidRequest, `invalid request: "method" must be a non-empty string`)
			return nil, nil, false
		}
		if len(env.ID) > 0 && !idOK {
			s.writeError(nil, jsonrpc2.CodeInvalidRequest, `invalid request: "id" must be a string or a non-negative integer`)
			return nil, nil, false
		}
		req := &jsonrpc2.Request{Method: method, Notif: len(env.ID) == 0}
		if !req.Notif {
			req.ID = requestID(id)
		}
		return req, env.Params, true
	case isResponse && !isRequest && idOK:
		s.deliver(string(id), env)
		return nil, nil, false
	case isResponse && !isRequest:
		// A response we cannot match; there is nobody to answer.
		return nil, nil, false
	default:
		s.writeError(idOrNull(id, idOK), jsonrpc2.CodeInvalidRequest, `invalid request: a message needs "method" (a request) or "result"/"error" (a response)`)
		return nil, nil, false
	}
}

// canonicalID returns the id as jsonrpc2 reads it back: a string or a non-negative
// integer that fits in int64.
func canonicalID(raw json.RawMessage) ([]byte, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		b, _ := json.Marshal(s)
		return b, true
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 0 {
		return nil, false
	}
	return strconv.AppendInt(nil, n, 10), true
}

// requestID is a canonical id as jsonrpc2 would have read it.
func requestID(id []byte) jsonrpc2.ID {
	if id[0] == '"' {
		var s string
		_ = json.Unmarshal(id, &s)
		return jsonrpc2.ID{Str: s, IsString: true}
	}
	n, _ := strconv.ParseUint(string(id), 10, 64)
	return jsonrpc2.ID{Num: n}
}

func idOrNull(id []byte, ok bool) []byte {
	if !ok {
		return nil
	}
	return id
}

func syntaxError(frame []byte) string {
	var v any
	err := json.Unmarshal(frame, &v)
	if err == nil {
		return "not a JSON-RPC message"
	}
	hint := ""
	if bytes.Count(frame, []byte("{")) != bytes.Count(frame, []byte("}")) {
		hint = " (one message per line: pretty-printed JSON must be compacted, e.g. with jq -c)"
	}
	return err.Error() + hint
}

// expect registers the id of a call we are about to send and returns where its answer
// will arrive. The caller must forget the id if it stops waiting before the answer, so
// that a host that never answers costs nothing beyond the calls in flight.
func (s *stream) expect(id string) <-chan callAnswer {
	answer := make(chan callAnswer, 1)
	s.mu.Lock()
	s.calls[id] = answer
	s.mu.Unlock()
	return answer
}

// forget unregisters a call whose caller gave up (timeout, channel closed, send failed);
// a late answer to it is dropped.
func (s *stream) forget(id string) {
	s.mu.Lock()
	delete(s.calls, id)
	s.mu.Unlock()
}

// deliver hands the answer in env to the call waiting for id, if any.
func (s *stream) deliver(id string, env envelope) {
	s.mu.Lock()
	answer := s.calls[id]
	delete(s.calls, id)
	s.mu.Unlock()
	if answer == nil {
		return // a late answer to a call given up on, or an id we never sent
	}
	if len(env.Error) == 0 {
		answer <- callAnswer{result: env.Result}
		return
	}
	var wireErr jsonrpc2.Error
	if env.Error[0] != '{' || json.Unmarshal(env.Error, &wireErr) != nil {
		wireErr = jsonrpc2.Error{Code: jsonrpc2.CodeInvalidRequest, Message: "malformed error answer (want {code, message, data?}): " + quoteBounded(string(env.Error))}
	}
	answer <- callAnswer{err: &wireErr}
}

// end marks the input as ended: calls still waiting for an answer fail at once.
func (s *stream) end() {
	s.goneOnce.Do(func() { close(s.gone) })
}

// readFrame returns the next frame's bytes, skipping blank lines. A frame over the limit
// is consumed and reported as errTooLarge.
func (s *stream) readFrame() ([]byte, error) {
	if s.framing == LSP {
		return s.readLSPFrame()
	}
	for {
		line, err := s.readLine()
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return line, nil
	}
}

func (s *stream) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(line)+len(chunk) > s.maxBytes+2 { // +2 for "\r\n"
			for errors.Is(err, bufio.ErrBufferFull) { // skip the rest without keeping it
				_, err = s.r.ReadSlice('\n')
			}
			return nil, errTooLarge
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) > 0:
			return line, nil // a last line without "\n"
		default:
			return nil, err
		}
	}
}

func (s *stream) readLSPFrame() ([]byte, error) {
	length := -1
	for {
		header, err := s.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		header = strings.TrimRight(header, "\r\n")
		if header == "" {
			if length < 0 {
				s.writeError(nil, jsonrpc2.CodeParseError, "parse error: LSP frame without a Content-Length header")
				continue
			}
			break
		}
		name, value, ok := strings.Cut(header, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || n < 0 {
				s.writeError(nil, jsonrpc2.CodeParseError, fmt.Sprintf("parse error: bad Content-Length %q", quoteBounded(value)))
				length = -1
				continue
			}
			length = n
		}
	}
	if length > s.maxBytes {
		if _, err := io.CopyN(io.Discard, s.r, int64(length)); err != nil {
			return nil, err
		}
		return nil, errTooLarge
	}
	frame := make([]byte, length)
	if _, err := io.ReadFull(s.r, frame); err != nil {
		return nil, err
	}
	return frame, nil
}

// WriteObject implements jsonrpc2.ObjectStream. jsonrpc2 hands it messages that marshal
// themselves; their output is used as it is (json.Marshal would scan and copy it again).
func (s *stream) WriteObject(obj any) error {
	var (
		b   []byte
		err error
	)
	if m, ok := obj.(json.Marshaler); ok {
		b, err = m.MarshalJSON()
	} else {
		b, err = json.Marshal(obj)
	}
	if err != nil {
		return err
	}
	return s.writeFrame(b)
}

// writeFrame writes one message made of parts. Writers that find others waiting leave the
// flush to the last of them, so a fan-out of N applies costs a few write calls, not N;
// the last writer always flushes, so no message waits for a later one.
func (s *stream) writeFrame(parts ...[]byte) error {
	if s.trace != nil {
		s.trace.frame("->", bytes.Join(parts, nil))
	}
	s.writers.Add(1)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.writeParts(parts)
	if s.writers.Add(-1) == 0 && err == nil {
		err = s.w.Flush()
	}
	return err
}

func (s *stream) writeParts(parts [][]byte) error {
	if s.framing == LSP {
		n := 0
		for _, p := range parts {
			n += len(p)
		}
		if _, err := fmt.Fprintf(s.w, "Content-Length: %d\r\n\r\n", n); err != nil {
			return err
		}
	}
	for _, p := range parts {
		if _, err := s.w.Write(p); err != nil {
			return err
		}
	}
	if s.framing != LSP {
		return s.w.WriteByte('\n')
	}
	return nil
}

// writeError answers a frame the stream rejected. id nil writes "id": null.
func (s *stream) writeError(id []byte, code int64, message string) {
	if id == nil {
		id = []byte("null")
	}
	msg, _ := json.Marshal(message)
	b := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%s}}`, id, code, msg)
	_ = s.writeFrame(b) // a broken stdout ends the read loop on its own
}

// Close implements jsonrpc2.ObjectStream.
func (s *stream) Close() error {
	s.end()
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

// tracer writes every frame to stderr when --trace is on; nil is off.
type tracer struct {
	mu sync.Mutex
	w  io.Writer
}

func (t *tracer) frame(direction string, b []byte) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%s %s\n", direction, b)
}

func quoteBounded(s string) string {
	const limit = 64
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}
