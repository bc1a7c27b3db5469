package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/internal/strictjson"
)

// conn is the sidecar's one connection to the host. It owns the read loop (every frame
// read, checked and handed on, in arrival order, on the one goroutine Serve starts and
// joins), the table of our calls to the host waiting for their answers, and the writer.
// It uses jsonrpc2's wire types (Request, Response, Error, ID) and codes, never its
// Conn: see docs/design-rpc.md for why.
//
// Beyond framing, the read loop does what a stock codec does not:
//
//   - a malformed frame is answered right here (-32700 or -32600, id null when unknown)
//     and reading goes on;
//   - a frame that is not UTF-8 is refused before it is read further (refuseText), so
//     nothing of it is stored, applied or forwarded;
//   - a request is handed to the server with its params raw (only the envelope is
//     parsed: jsonrpc2's decoder would round-trip params through map[string]any);
//   - an answer to one of our calls (getSnapshot, apply) goes to the waiting caller with
//     its result raw (see expect);
//   - --trace copies every frame in and out to the trace writer.
type conn struct {
	in          *frameReader
	out         *frameWriter
	trace       *tracer
	maxBytes    int
	callTimeout time.Duration // for the message of a call that timed out
	log         *slog.Logger
	plain       atomic.Pointer[plainData] // the last data checked by lineSafe
	callID      atomic.Uint64

	// closing is set once no frame may be dispatched any more: by a shutdown request
	// before its answer is written, and by Serve when it stops. The read loop reads it
	// before each dispatch, so a frame the host writes after the shutdown answer is
	// never dispatched.
	closing atomic.Bool

	mu    sync.Mutex
	calls map[string]chan callAnswer // calls to the host waiting for their answer, by id; guarded by mu

	// done is closed by end, once: the input ended, the output broke, or Serve stopped the
	// connection. Calls still waiting for an answer fail at once.
	done    chan struct{}
	endOnce sync.Once
	// err says why the connection ended: nil for the end of the input and for a stop,
	// else the first read or write failure. Written once in end before done is closed;
	// read only after done is closed.
	err error
}

// callAnswer is the host's answer to one of our calls: a raw result, or its error, or
// why the sidecar refused to read it.
type callAnswer struct {
	result  json.RawMessage
	err     *jsonrpc2.Error
	refused error
}

func newConn(framing Framing, r io.Reader, w io.Writer, maxBytes int, trace *tracer) *conn {
	c := &conn{
		trace:    trace,
		maxBytes: maxBytes,
		log:      slog.New(slog.DiscardHandler),
		calls:    map[string]chan callAnswer{},
		done:     make(chan struct{}),
	}
	c.in = &frameReader{framing: framing, r: bufio.NewReaderSize(r, 64*1024), maxBytes: maxBytes,
		report: func(code int64, message string) { c.writeError(nil, code, message) }}
	c.out = newFrameWriter(framing, w, trace, func(err error) { c.end(fmt.Errorf("writing to the host: %w", err)) })
	return c
}

// readLoop reads every frame until the input ends or the connection is stopped, hands
// requests to dispatch and answers to their callers, and answers malformed frames.
// dispatch runs on this goroutine, so requests are taken in arrival order.
func (c *conn) readLoop(dispatch func(req *jsonrpc2.Request, params json.RawMessage)) {
	for !c.closing.Load() {
		frame, err := c.in.readFrame()
		if errors.Is(err, errTooLarge) {
			c.writeError(nil, jsonrpc2.CodeInvalidRequest, fmt.Sprintf("message larger than the limit of %d bytes (--max-message-bytes): it was skipped", c.maxBytes))
			continue
		}
		if err != nil {
			// Declared here, not before the check: errors.As makes it escape, and a frame
			// read cleanly would pay its allocation.
			var fatal *framingError
			if errors.As(err, &fatal) {
				c.writeError(nil, fatal.code, fatal.message)
				c.end(fmt.Errorf("reading from the host: %w", err))
				return
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = nil // the host closed our input, or died mid-frame: it is gone
			} else {
				err = fmt.Errorf("reading from the host: %w", err)
			}
			c.end(err)
			return
		}
		c.trace.frame("<-", frame)
		if c.closing.Load() {
			return
		}
		if err := strictjson.CheckUTF8(frame); err != nil {
			c.refuseText(frame, err)
			continue
		}
		if req, params, ok := c.admit(frame); ok {
			dispatch(req, params)
		}
	}
}

// stopDispatch makes the read loop drop every frame it reads from now on.
func (c *conn) stopDispatch() { c.closing.Store(true) }

// end marks the connection as ended, for reason (nil: an orderly end). The first call
// wins: a write that fails after the input ended does not turn a goodbye into a failure.
func (c *conn) end(reason error) {
	c.endOnce.Do(func() {
		c.err = reason
		close(c.done)
	})
}

// admit checks a frame and returns the request it carries with its raw params; it hands
// an answer to one of our calls to its caller, and answers a malformed frame with an
// error. It returns false for anything but a request.
func (c *conn) admit(frame []byte) (*jsonrpc2.Request, json.RawMessage, bool) {
	trimmed := bytes.TrimSpace(frame)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if !json.Valid(trimmed) {
			c.writeError(nil, jsonrpc2.CodeParseError, "parse error: "+syntaxError(trimmed))
			return nil, nil, false
		}
		c.writeError(nil, jsonrpc2.CodeInvalidRequest, "batches are not supported: send one message per line")
		return nil, nil, false
	}
	var env envelope
	if !splitEnvelope(trimmed, &env) {
		// Off the common path: decodeEnvelope and its messages. Into a variable of its own,
		// which escapes to the heap through Decode's any: env stays on the stack.
		var slow envelope
		if err := decodeEnvelope(trimmed, &slow); err != nil {
			code, message := envelopeError(trimmed, err)
			c.writeError(nil, code, message)
			return nil, nil, false
		}
		env = slow
	}
	id, idOK := canonicalID(env.ID)
	if string(env.JSONRPC) != `"2.0"` {
		c.writeError(idOrNull(id, idOK), jsonrpc2.CodeInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`)
		return nil, nil, false
	}
	isRequest := len(env.Method) > 0
	isResponse := len(env.Result) > 0 || len(env.Error) > 0
	switch {
	case isRequest && !isResponse:
		method, known, ok := methodName(env.Method)
		if !ok || method == "" {
			c.writeError(idOrNull(id, idOK), jsonrpc2.CodeInvalidRequest, `invalid request: "method" must be a non-empty string`)
			return nil, nil, false
		}
		if len(env.ID) > 0 && !idOK {
			c.writeError(nil, jsonrpc2.CodeInvalidRequest, `invalid request: "id" must be a string or a non-negative integer`)
			return nil, nil, false
		}
		if len(env.ID) == 0 && known >= 0 {
			return &notifications[known], env.Params, true // shared, read only: see notifications
		}
		req := &jsonrpc2.Request{Method: method, Notif: len(env.ID) == 0}
		if !req.Notif {
			req.ID = requestID(id)
		}
		return req, env.Params, true
	case isResponse && !isRequest && idOK:
		c.deliver(string(id), env)
		return nil, nil, false
	case isResponse && !isRequest:
		// A response we cannot match; there is nobody to answer.
		return nil, nil, false
	default:
		c.writeError(idOrNull(id, idOK), jsonrpc2.CodeInvalidRequest, `invalid request: a message needs "method" (a request) or "result"/"error" (a response)`)
		return nil, nil, false
	}
}

// call sends a request to the host and returns its raw result. Neither params nor
// results are re-encoded or decoded on the way (see writeCall and deliver); a host
// error answer keeps its code and data.
//
// timeout names the call timeout that bounds ctx, for the message of a call that timed
// out ("" names --call-timeout): a channel's own options.callTimeoutMs may apply instead.
func (c *conn) call(ctx context.Context, method string, params any, timeout string) (json.RawMessage, error) {
	key := strconv.FormatUint(c.callID.Add(1), 10)
	answer := c.expect(key)
	select {
	case <-c.done:
		c.forget(key)
		return nil, fmt.Errorf("%s: %w", method, jsonrpc2.ErrClosed)
	default:
	}
	if err := c.writeCall(key, method, params); err != nil {
		c.forget(key)
		return nil, fmt.Errorf("sending %s to the host: %w", method, err)
	}
	var (
		a   callAnswer
		err error
	)
	select {
	case a = <-answer:
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.done:
		err = jsonrpc2.ErrClosed
	}
	if err != nil {
		c.forget(key)
		select {
		case a = <-answer: // the answer came in at the same moment: take it
			err = nil
		default:
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		if timeout == "" {
			timeout = fmt.Sprintf("%s, --call-timeout", c.callTimeout)
		}
		return nil, fmt.Errorf("the host did not answer %s within the call timeout (%s): %w", method, timeout, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if a.refused != nil {
		// A malformed answer, as decodeSnapshot reports one: the engine calls it a
		// protocol error.
		return nil, &engine.FieldError{Field: "the host's " + method + " answer", Err: a.refused}
	}
	if wireErr := a.err; wireErr != nil {
		return nil, hostError(method, wireErr)
	}
	return a.result, nil
}

// expect registers the id of a call we are about to send and returns where its answer
// will arrive. The caller must forget the id if it stops waiting before the answer, so
// that a host that never answers costs nothing beyond the calls in flight.
func (c *conn) expect(id string) <-chan callAnswer {
	answer := make(chan callAnswer, 1)
	c.mu.Lock()
	c.calls[id] = answer
	c.mu.Unlock()
	return answer
}

// forget unregisters a call whose caller gave up (timeout, channel closed, send failed);
// a late answer to it is dropped.
func (c *conn) forget(id string) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// deliver hands the answer in env to the call waiting for id, if any.
func (c *conn) deliver(id string, env envelope) {
	c.mu.Lock()
	answer := c.calls[id]
	delete(c.calls, id)
	c.mu.Unlock()
	if answer == nil {
		return // a late answer to a call given up on, or an id we never sent
	}
	if len(env.Error) == 0 {
		answer <- callAnswer{result: env.Result}
		return
	}
	var wireErr jsonrpc2.Error
	if env.Error[0] != '{' || strictjson.Decode(env.Error, &wireErr) != nil {
		wireErr = jsonrpc2.Error{Code: jsonrpc2.CodeInvalidRequest, Message: "malformed error answer (want {code, message, data?}): " + quoteBounded(string(env.Error))}
	}
	answer <- callAnswer{err: &wireErr}
}

// refuseText answers a frame that is not UTF-8 (RFC 8259 §8.1), found by the check every
// frame passes before it is read further: nothing of it is stored, applied or forwarded.
// A request whose params hold the bad bytes gets -32602 with its id, naming where; an
// answer to one of our calls fails that call (the engine reports it, and applies
// nothing); anything else (a notification, bad bytes outside params, an envelope that
// cannot be read) is a parse error, id null. The envelope is read only for the id.
func (c *conn) refuseText(frame []byte, bad error) {
	var where *strictjson.Error
	root := ""
	if errors.As(bad, &where) {
		root, _, _ = strings.Cut(where.Path, ".")
		root, _, _ = strings.Cut(root, "[")
	}
	var env envelope
	trimmed := bytes.TrimSpace(frame)
	if !splitEnvelope(trimmed, &env) && json.Unmarshal(trimmed, &env) != nil {
		c.writeError(nil, jsonrpc2.CodeParseError, "parse error: "+bad.Error())
		return
	}
	id, idOK := canonicalID(env.ID)
	idOK = idOK && root != "id" // an id with bad bytes reads as another id
	isRequest := len(env.Method) > 0
	switch {
	case !isRequest && idOK && (len(env.Result) > 0 || len(env.Error) > 0):
		c.mu.Lock()
		answer := c.calls[string(id)]
		delete(c.calls, string(id))
		c.mu.Unlock()
		if answer != nil {
			answer <- callAnswer{refused: bad}
		}
	case isRequest && idOK && root == "params":
		c.writeError(id, jsonrpc2.CodeInvalidParams, "invalid params: "+bad.Error())
	default:
		c.writeError(nil, jsonrpc2.CodeParseError, "parse error: "+bad.Error())
	}
}

// reply answers a request; a notification gets no answer, but its error is logged.
func (c *conn) reply(req *jsonrpc2.Request, result any, err error) {
	if req.Notif {
		if err != nil {
			c.log.Warn("notification failed", "method", req.Method, "err", err)
		}
		return
	}
	var mErr error
	if err == nil {
		var b []byte
		if b, err = json.Marshal(result); err == nil {
			// The envelope by hand, in jsonrpc2.Response's member order: its MarshalJSON
			// marshals the result a second time (compacting the RawMessage), and on the
			// first reply builds encoding/json's encoder for its type by reflection, a
			// tenth of the sidecar's cold start to the initialize answer.
			mErr = c.write(resultHead(req.ID), b, resultTail)
		}
	}
	if err != nil {
		resp := &jsonrpc2.Response{ID: req.ID, Error: toWire(err)}
		var b []byte
		if b, mErr = resp.MarshalJSON(); mErr == nil {
			mErr = c.write(b)
		}
	}
	if mErr != nil {
		c.log.Debug("reply not sent", "method", req.Method, "err", mErr)
	}
}

// resultHead and resultTail frame a result's JSON as jsonrpc2.Response.MarshalJSON
// does, byte for byte.
func resultHead(id jsonrpc2.ID) []byte {
	b := append(make([]byte, 0, 32), `{"id":`...)
	if id.IsString {
		b = appendJSONString(b, id.Str)
	} else {
		b = strconv.AppendUint(b, id.Num, 10)
	}
	return append(b, `,"result":`...)
}

var resultTail = []byte(`,"jsonrpc":"2.0"}`)

// notify sends a notification to the host.
func (c *conn) notify(method string, params any) error {
	req := &jsonrpc2.Request{Method: method, Notif: true}
	if err := req.SetParams(params); err != nil {
		return err
	}
	b, err := req.MarshalJSON()
	if err != nil {
		return err
	}
	return c.write(b)
}

// writeError answers a frame the read loop rejected. id nil writes "id": null.
func (c *conn) writeError(id []byte, code int64, message string) {
	if id == nil {
		id = []byte("null")
	}
	msg, _ := json.Marshal(message)
	b := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%s}}`, id, code, msg)
	_ = c.write(b) // a failed write has ended the connection already
}

// write queues one frame for the writer (c.out.run, which Serve starts and joins). A
// failed write ends the connection: a host that cannot read us is gone, so the read loop
// stops too (Serve interrupts it); write returns that failure from then on.
func (c *conn) write(parts ...[]byte) error {
	return c.out.writeFrame(parts...)
}
