package sidecar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func noRecord(string, []byte) {}

// readOne runs ReadObject with a bound on its wait: a read that never returns is the
// failure these tests look for.
func readOne(t *testing.T, s *stream) (json.RawMessage, error) {
	t.Helper()
	type result struct {
		msg json.RawMessage
		err error
	}
	done := make(chan result, 1)
	go func() {
		var msg json.RawMessage
		err := s.ReadObject(&msg)
		done <- result{msg, err}
	}()
	select {
	case r := <-done:
		return r.msg, r.err
	case <-time.After(testTimeout):
		t.Fatalf("ReadObject did not return within %s", testTimeout)
		return nil, nil
	}
}

// A header line that never ends is an error once it passes maxHeaderLine, not a read that
// buffers the sidecar's output until it ends.
func TestLSPHeaderLineIsBounded(t *testing.T) {
	noLeaks(t)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	go func() {
		// Blocks once the reader stops reading; ends when the cleanup closes the pipe.
		_, _ = pw.Write([]byte("Content-Length: 2\r\nX-Pad: " + strings.Repeat("a", 4*maxHeaderLine)))
	}()
	s := newStream(true, nopWriteCloser{io.Discard}, pr, noRecord)
	_, err := readOne(t, s)
	require.ErrorContains(t, err, fmt.Sprintf("LSP header line from the sidecar is over %d bytes", maxHeaderLine))
	require.ErrorContains(t, err, "Options.Framing must match its --framing flag")
	select {
	case <-s.readDone:
	default:
		t.Fatal("readDone is open after the read error that ends reading")
	}
}

// A long header line under the bound reads; a line ending in a bare \n is an error (the
// codec would look for the next '\r' past the header section, without bound).
func TestLSPHeadersUnderTheBound(t *testing.T) {
	body := `{"jsonrpc":"2.0","method":"error","params":{}}`
	in := fmt.Sprintf("X-Pad: %s\r\nContent-Length: %d\r\n\r\n%s", strings.Repeat("a", maxHeaderLine-10), len(body), body) +
		"Content-Length: 2\n\n{}"
	s := newStream(true, nopWriteCloser{io.Discard}, strings.NewReader(in), noRecord)
	msg, err := readOne(t, s)
	require.NoError(t, err)
	require.JSONEq(t, body, string(msg))
	_, err = readOne(t, s)
	require.ErrorContains(t, err, `ends in a bare \n ("Content-Length: 2")`)
}

// A header section of short lines with no blank line ends at the read buffer's size.
func TestLSPHeaderSectionIsBounded(t *testing.T) {
	in := strings.Repeat("X-Pad: aaaaaaaa\r\n", 2*readBuffer/17)
	s := newStream(true, nopWriteCloser{io.Discard}, strings.NewReader(in), noRecord)
	_, err := readOne(t, s)
	require.ErrorContains(t, err, fmt.Sprintf("LSP header section from the sidecar is over %d bytes", readBuffer))
}

// syncBuffer is a WriteCloser whose Writes are checked not to overlap: the stream must
// serialise them itself.
type syncBuffer struct {
	busy   sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	if !b.busy.TryLock() {
		return 0, fmt.Errorf("a Write overlapped another")
	}
	defer b.busy.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *syncBuffer) Close() error { return nil }

// Every frame leaves in one Write: frames written from many goroutines, with WriteRaw
// between them, read back whole, in both framings, and Record sees each body once.
func TestFramesAreWrittenWhole(t *testing.T) {
	for _, lsp := range []bool{false, true} {
		t.Run(fmt.Sprint("lsp=", lsp), func(t *testing.T) {
			const writers, each = 4, 5
			out := &syncBuffer{}
			var recMu sync.Mutex
			recorded := map[string]int{}
			s := newStream(lsp, out, strings.NewReader(""), func(dir string, b []byte) {
				recMu.Lock()
				recorded[dir+string(b)]++
				recMu.Unlock()
			})
			raw := `{"jsonrpc":"2.0","method":"raw"}`
			rawFrame := raw + "\n"
			if lsp {
				rawFrame = fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(raw), raw)
			}
			big := strings.Repeat("x", 16<<10) // over bufio.Writer's 4 KiB, which would split it
			var wg sync.WaitGroup
			errs := make(chan error, 2*writers*each)
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						errs <- s.WriteObject(map[string]any{"jsonrpc": "2.0", "method": "m", "params": []any{w, i, big}})
						errs <- s.writeRaw([]byte(rawFrame))
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.Equal(t, 2*writers*each, out.writes, "Writes for %d frames and %d raw writes", writers*each, writers*each)
			back := newStream(lsp, nopWriteCloser{io.Discard}, bytes.NewReader(out.buf.Bytes()), noRecord)
			seen := map[string]bool{}
			for range 2 * writers * each {
				var msg struct {
					Method string `json:"method"`
					Params []any  `json:"params"`
				}
				require.NoError(t, back.ReadObject(&msg))
				if msg.Method == "raw" {
					continue
				}
				require.Len(t, msg.Params, 3)
				require.Equal(t, big, msg.Params[2])
				seen[fmt.Sprint(msg.Params[0], "/", msg.Params[1])] = true
			}
			require.Len(t, seen, writers*each, "distinct frames read back")
			var rest json.RawMessage
			require.ErrorIs(t, back.ReadObject(&rest), io.EOF, "bytes after the last frame")
			require.Len(t, recorded, writers*each, "distinct frames recorded")
		})
	}
}
