package rpc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

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

// maxHeaderBytes bounds one LSP header line. Real headers ("Content-Length: 123",
// "Content-Type: …") are a few dozen bytes; without a bound, a host that never sends
// "\n" would make the sidecar buffer its whole output.
const maxHeaderBytes = 1024

// frameReader splits the input into frames. It keeps at most one frame (bounded by
// maxBytes) and one header line (bounded by maxHeaderBytes) in memory, whatever it is fed.
type frameReader struct {
	framing  Framing
	r        *bufio.Reader
	maxBytes int
	// report answers a malformed LSP header block; reading goes on after it.
	report func(code int64, message string)
}

// readFrame returns the next frame's bytes, skipping blank lines. A frame over the limit
// is consumed and reported as errTooLarge.
func (f *frameReader) readFrame() ([]byte, error) {
	if f.framing == LSP {
		return f.readLSPFrame()
	}
	for {
		line, err := f.readLine(f.maxBytes + 2) // +2 for "\r\n"
		if err != nil {
			return nil, err
		}
		for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
			line = line[:len(line)-1] // bytes.TrimRight, without building its set per line
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return line, nil
	}
}

// readLine returns the next line, "\n" included, or errTooLarge (the line consumed, not
// kept) when it is longer than limit. A line longer than the read buffer is kept as a
// list of buffer-sized copies and joined once whole, so an oversize line costs at most
// limit bytes before it is dropped: growing one slice by appending would keep several
// generations of it (a 100 MiB line over a 16 MiB limit took 62 MiB).
func (f *frameReader) readLine(limit int) ([]byte, error) {
	chunk, err := f.r.ReadSlice('\n')
	if err == nil && len(chunk) <= limit {
		return append([]byte(nil), chunk...), nil // the common case: one buffer's worth
	}
	var (
		parts [][]byte
		size  int
	)
	for {
		if size+len(chunk) > limit {
			for errors.Is(err, bufio.ErrBufferFull) { // skip the rest without keeping it
				_, err = f.r.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errTooLarge
		}
		parts = append(parts, append([]byte(nil), chunk...))
		size += len(chunk)
		switch {
		case err == nil:
			return bytes.Join(parts, nil), nil
		case errors.Is(err, bufio.ErrBufferFull):
			chunk, err = f.r.ReadSlice('\n')
			continue
		case errors.Is(err, io.EOF) && !blank(parts):
			return bytes.Join(parts, nil), nil // a last line without "\n"
		default:
			return nil, err
		}
	}
}

func blank(parts [][]byte) bool {
	for _, p := range parts {
		if len(bytes.TrimSpace(p)) > 0 {
			return false
		}
	}
	return true
}

// framingError is an LSP header the stream cannot go on from: the Content-Length is not
// a number, or larger than the limit. LSP framing has no mark to find the next frame by,
// so the sidecar cannot skip the frame (a length of 2^62 would have it wait for bytes
// that never come, answering nothing): the read loop answers it, then ends the
// connection with it, and the sidecar exits 1 with the message on stderr.
type framingError struct {
	code    int64
	message string
}

func (e *framingError) Error() string { return e.message }

func (f *frameReader) readLSPFrame() ([]byte, error) {
	length := -1
	for {
		raw, err := f.readLine(maxHeaderBytes)
		if errors.Is(err, errTooLarge) {
			f.report(jsonrpc2.CodeParseError, fmt.Sprintf("parse error: LSP header line longer than %d bytes: it was skipped (send Content-Length: N, then an empty line, then the message)", maxHeaderBytes))
			length = -1
			continue
		}
		if err != nil {
			return nil, err
		}
		header := strings.TrimRight(string(raw), "\r\n")
		if header == "" {
			if length < 0 {
				f.report(jsonrpc2.CodeParseError, "parse error: LSP frame without a Content-Length header")
				continue
			}
			break
		}
		name, value, ok := strings.Cut(header, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			value = strings.TrimSpace(value)
			digits := value != "" && strings.TrimLeft(value, "0123456789") == ""
			n, err := strconv.Atoi(value)
			if digits && err != nil {
				n = math.MaxInt // too large for an int: over any limit
			} else if !digits {
				return nil, &framingError{code: jsonrpc2.CodeParseError, message: fmt.Sprintf("parse error: bad Content-Length %q: want a decimal byte count; the next frame cannot be found without it, so the sidecar stops (LSP framing error)", quoteBounded(value))}
			}
			if n > f.maxBytes {
				return nil, &framingError{code: jsonrpc2.CodeInvalidRequest, message: fmt.Sprintf("message of %s bytes (Content-Length) is larger than the limit of %d bytes (--max-message-bytes); LSP framing cannot skip it without reading it, so the sidecar stops (LSP framing error): raise --max-message-bytes or send smaller messages", quoteBounded(value), f.maxBytes)}
			}
			length = n
		}
	}
	frame := make([]byte, length)
	if _, err := io.ReadFull(f.r, frame); err != nil {
		return nil, err
	}
	return frame, nil
}

// frameWriter writes whole frames from one goroutine, run, which the connection's owner
// starts and joins. Senders queue a frame and return; run takes everything queued at each
// wake-up, writes it through one buffer and flushes once, so a fan-out of N applies costs
// one write call per wake-up (a few, not N), no sender waits on a lock held across a
// syscall, and no frame waits for a later one.
type frameWriter struct {
	framing Framing
	trace   *tracer
	w       *bufio.Writer // used by run only
	// failed is told of the first write failure, once, from run.
	failed func(error)

	mu sync.Mutex
	// queue holds the frames sent and not yet taken by run, in send order; at most
	// maxQueuedFrames, beyond which send waits (a host that stops reading slows its
	// senders down, as a blocking write did). Guarded by mu.
	queue []outFrame
	// closed: close was called; run writes what is queued, then returns. err: the first
	// write failure, after which frames are dropped and send fails. Guarded by mu.
	closed bool
	err    error
	ready  sync.Cond // run waits on it for frames or close; on mu
	space  sync.Cond // send waits on it for room in queue; on mu
}

// maxQueuedFrames bounds the frames waiting for run. The frames share their large parts
// (snapshot data) with the callers, so the bound is on count: 1,000 channels' applies of
// one round fit, a host that never reads cannot grow it without end.
const maxQueuedFrames = 4096

// outFrame is one message: up to three parts, written one after another (an apply's head,
// its data as it came, its tail), so that sending copies none of them.
type outFrame struct {
	parts [3][]byte
	n     int
}

var errWriterClosed = errors.New("the connection's writer is closed")

func newFrameWriter(framing Framing, w io.Writer, trace *tracer, failed func(error)) *frameWriter {
	f := &frameWriter{framing: framing, trace: trace, w: bufio.NewWriterSize(w, 64*1024), failed: failed}
	f.ready.L, f.space.L = &f.mu, &f.mu
	return f
}

// writeFrame queues one message made of parts (at most three) for run. It returns the
// failure of an earlier write, if any; a write of this frame that fails later reaches
// failed instead. It waits only while the queue is full.
func (f *frameWriter) writeFrame(parts ...[]byte) error {
	var fr outFrame
	fr.n = copy(fr.parts[:], parts)
	if fr.n < len(parts) {
		panic("rpc: a frame has at most three parts")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.queue) >= maxQueuedFrames && !f.closed && f.err == nil {
		f.space.Wait()
	}
	switch {
	case f.err != nil:
		return f.err
	case f.closed:
		return errWriterClosed
	}
	f.queue = append(f.queue, fr)
	if len(f.queue) == 1 {
		f.ready.Signal() // run waits only on an empty queue
	}
	return nil
}

// run writes queued frames until close, then what is left, and returns. After a failed
// write it drops frames (so that senders never wait for room) until close.
func (f *frameWriter) run() {
	var batch []outFrame
	for {
		f.mu.Lock()
		for len(f.queue) == 0 && !f.closed {
			f.ready.Wait()
		}
		if len(f.queue) == 0 { // closed, and everything written
			f.mu.Unlock()
			return
		}
		batch, f.queue = f.queue, batch[:0]
		failed := f.err != nil
		f.space.Broadcast()
		f.mu.Unlock()

		var err error
		for i := range batch {
			fr := &batch[i]
			if !failed && err == nil {
				if f.trace != nil {
					f.trace.frame("->", bytes.Join(fr.parts[:fr.n], nil))
				}
				err = f.writeParts(fr.parts[:fr.n])
			}
			*fr = outFrame{} // the queue's spare array must not keep data alive
		}
		if !failed && err == nil {
			err = f.w.Flush()
		}
		if err != nil && !failed {
			f.mu.Lock()
			f.err = err
			f.space.Broadcast()
			f.mu.Unlock()
			f.failed(err)
		}
	}
}

// close makes run return once every frame queued before it is written (or dropped after
// a failure); frames sent after it fail with errWriterClosed. Safe to call twice.
func (f *frameWriter) close() {
	f.mu.Lock()
	f.closed = true
	f.ready.Signal()
	f.space.Broadcast()
	f.mu.Unlock()
}

func (f *frameWriter) writeParts(parts [][]byte) error {
	if f.framing == LSP {
		n := 0
		for _, p := range parts {
			n += len(p)
		}
		if _, err := fmt.Fprintf(f.w, "Content-Length: %d\r\n\r\n", n); err != nil {
			return err
		}
	}
	for _, p := range parts {
		if _, err := f.w.Write(p); err != nil {
			return err
		}
	}
	if f.framing != LSP {
		return f.w.WriteByte('\n')
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
