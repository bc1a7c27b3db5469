package sidecar

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sourcegraph/jsonrpc2"
)

// maxHeaderLine bounds one LSP header line. jsonrpc2's VSCodeObjectCodec reads a header
// line with ReadString, which grows without limit: a sidecar that writes the wrong framing
// (or garbage) would make the host buffer its whole output. 8 KiB is far above any real
// header ("Content-Length: 4294967295\r\n" is 28 bytes).
const maxHeaderLine = 8 << 10

// readBuffer is the size of the LSP read buffer, and so the bound on a whole header
// section: checkHeaders keeps the section in the buffer until it has seen its end.
const readBuffer = 64 << 10

// stream is the jsonrpc2.ObjectStream over the sidecar's stdin and stdout, one per
// framing: NDJSON decodes as jsonrpc2.NewPlainObjectStream does (a json.Decoder on the
// pipe), LSP with jsonrpc2.VSCodeObjectCodec after checkHeaders has bounded the header
// lines. It is not jsonrpc2's own stream because the client needs three things those do
// not give: every frame leaves in one Write under wmu (so WriteRaw never lands inside
// one), each frame can be recorded as the bytes on the wire, and a request's params reach
// the Handler as the sidecar sent them (see frame).
type stream struct {
	lsp    bool
	r      *bufio.Reader // lsp only
	dec    *json.Decoder // ndjson only
	record func(dir string, frame []byte)

	wmu sync.Mutex // held for one whole frame: WriteObject and WriteRaw never interleave
	w   io.WriteCloser

	// last is the frame ReadObject decoded last. Written and read only on jsonrpc2's
	// reading goroutine, which calls ReadObject, then the OnRecv hooks and the Handler for
	// that same message, before it reads the next.
	last frame

	// readErr is the error that ended reading; written once before readDone is closed,
	// read only after it is.
	readErr  error
	readDone chan struct{}
}

// frame is what the client keeps of the message being dispatched. jsonrpc2's
// Request.UnmarshalJSON round-trips params through map[string]any, which sorts the keys
// and re-escapes the user's data in an apply; the Handler gets params from here instead.
type frame struct {
	raw    json.RawMessage // the whole message, as on the wire
	params json.RawMessage // its params member, as on the wire (nil when absent)
	nullID bool            // "id":null: the sidecar answers a frame it could not parse
}

func newStream(lsp bool, w io.WriteCloser, r io.Reader, record func(string, []byte)) *stream {
	s := &stream{lsp: lsp, w: w, record: record, readDone: make(chan struct{})}
	if lsp {
		s.r = bufio.NewReaderSize(r, readBuffer)
	} else {
		s.dec = json.NewDecoder(r)
	}
	return s
}

// ReadObject implements jsonrpc2.ObjectStream. jsonrpc2 closes the connection on any
// error it returns, so the first error is also the last: it is kept and readDone closed.
func (s *stream) ReadObject(v any) error {
	err := s.readObject(v)
	if err != nil {
		s.readErr = err
		close(s.readDone)
	}
	return err
}

func (s *stream) readObject(v any) error {
	var raw json.RawMessage
	if s.lsp {
		if err := s.checkHeaders(); err != nil {
			return err
		}
		if err := (jsonrpc2.VSCodeObjectCodec{}).ReadObject(s.r, &raw); err != nil {
			return err
		}
	} else if err := s.dec.Decode(&raw); err != nil {
		return err
	}
	s.record("<- ", raw)
	var head struct {
		ID     json.RawMessage `json:"id"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("a message from the sidecar is not a JSON object (%w): %.200s", err, raw)
	}
	s.last = frame{raw: raw, params: head.Params, nullID: string(head.ID) == "null"}
	return json.Unmarshal(raw, v)
}

// checkHeaders returns once the next LSP header section, up to its blank line, is in the
// read buffer, or an error if one of its lines is longer than maxHeaderLine or the section
// longer than the buffer, or does not end in \r\n. It consumes nothing: VSCodeObjectCodec then reads the section
// from the buffer, so its unbounded ReadString never waits for more than is there.
func (s *stream) checkHeaders() error {
	lineStart, i := 0, 0
	// Each turn scans at least one more byte, and i never passes the buffer size: at most
	// readBuffer turns.
	for {
		n := max(s.r.Buffered(), i+1)
		if n > s.r.Size() {
			return fmt.Errorf("LSP header section from the sidecar is over %d bytes with no blank line: the sidecar is not writing LSP framing (Options.Framing must match its --framing flag)", s.r.Size())
		}
		b, err := s.r.Peek(n)
		if err != nil {
			return err
		}
		for ; i < len(b); i++ {
			if b[i] != '\n' {
				if i-lineStart >= maxHeaderLine {
					return fmt.Errorf("LSP header line from the sidecar is over %d bytes (%.40q...): the sidecar is not writing LSP framing (Options.Framing must match its --framing flag)", maxHeaderLine, b[lineStart:i])
				}
				continue
			}
			if i == lineStart || b[i-1] != '\r' {
				// VSCodeObjectCodec looks for '\r', past this line's end if need be.
				return fmt.Errorf("LSP header line from the sidecar ends in a bare \\n (%.40q): LSP header lines end in \\r\\n (Options.Framing must match its --framing flag)", b[lineStart:i])
			}
			if i == lineStart+1 {
				return nil
			}
			lineStart = i + 1
		}
	}
}

// WriteObject implements jsonrpc2.ObjectStream: the frame is built first, then written
// with one Write, so a large frame is never split around a WriteRaw.
func (s *stream) WriteObject(obj any) error {
	var buf bytes.Buffer
	var body []byte
	if s.lsp {
		if err := (jsonrpc2.VSCodeObjectCodec{}).WriteObject(&buf, obj); err != nil {
			return err
		}
		body = buf.Bytes()[bytes.Index(buf.Bytes(), []byte("\r\n\r\n"))+4:]
	} else {
		if err := json.NewEncoder(&buf).Encode(obj); err != nil {
			return err
		}
		body = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	s.record("-> ", body)
	return s.writeRaw(buf.Bytes())
}

func (s *stream) writeRaw(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.w.Write(b)
	return err
}

// Close implements jsonrpc2.ObjectStream. It closes stdin only, which tells the sidecar
// to stop; stdout is read until it ends and closed by exec.Cmd.Wait.
func (s *stream) Close() error {
	err := s.w.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
