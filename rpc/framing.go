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
		line = bytes.TrimRight(line, "\r\n")
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

// frameWriter writes whole frames, one at a time.
type frameWriter struct {
	framing Framing
	trace   *tracer

	mu      sync.Mutex
	w       *bufio.Writer // guarded by mu
	writers atomic.Int32  // writeFrame calls writing or waiting for mu; the last one flushes
}

// writeFrame writes one message made of parts. Writers that find others waiting leave the
// flush to the last of them, so a fan-out of N applies costs a few write calls, not N;
// the last writer always flushes, so no message waits for a later one. After a failed
// write every later one fails too (bufio.Writer keeps the first error).
func (f *frameWriter) writeFrame(parts ...[]byte) error {
	if f.trace != nil {
		f.trace.frame("->", bytes.Join(parts, nil))
	}
	f.writers.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.writeParts(parts)
	if f.writers.Add(-1) == 0 && err == nil {
		err = f.w.Flush()
	}
	return err
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
