package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// Every test, benchmark and fuzz seed of the package must leave no goroutine behind:
// Serve joins everything it starts.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const serveBound = 10 * time.Second // failure bound; Serve stops in milliseconds

// rawServer runs a Server over pipes the test holds both ends of.
type rawServer struct {
	in     *io.PipeWriter // the server's input, from the host's side
	out    *bufio.Reader  // the server's output, from the host's side
	outW   *io.PipeWriter // the server's end of its output
	served chan error
}

func startRaw(t *testing.T, cfg Config) *rawServer {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	rs := &rawServer{in: inW, out: bufio.NewReader(outR), outW: outW, served: make(chan error, 1)}
	go func() { rs.served <- NewServer(cfg).Serve(context.Background(), inR, outW) }()
	t.Cleanup(func() {
		_ = inW.Close()
		_ = outR.Close()
		select {
		case <-rs.served:
		case <-time.After(serveBound):
			t.Error("Serve did not return after its input closed")
		}
	})
	return rs
}

// wait returns Serve's result, failing the test if it does not come within serveBound.
func (rs *rawServer) wait(t *testing.T, after string) error {
	t.Helper()
	select {
	case err := <-rs.served:
		rs.served <- err // for the cleanup
		return err
	case <-time.After(serveBound):
		t.Fatalf("Serve did not return within %v after %s", serveBound, after)
		return nil
	}
}

func (rs *rawServer) send(t *testing.T, line string) {
	t.Helper()
	_, err := io.WriteString(rs.in, line+"\n")
	require.NoError(t, err)
}

func (rs *rawServer) recv(t *testing.T) map[string]any {
	t.Helper()
	line, err := rs.out.ReadBytes('\n')
	require.NoError(t, err, "reading the server's output")
	var msg map[string]any
	require.NoError(t, json.Unmarshal(line, &msg), "got %s", line)
	return msg
}

func TestABrokenOutputEndsServeWithItsError(t *testing.T) {
	defer goleak.VerifyNone(t)
	rs := startRaw(t, Config{})
	// The host stops reading for good: the answer to the next request cannot be written.
	require.NoError(t, rs.outW.CloseWithError(io.ErrClosedPipe))
	rs.send(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1"}}`)
	err := rs.wait(t, "a failed write, with the input still open")
	require.ErrorIs(t, err, io.ErrClosedPipe, "got %v", err)
	require.ErrorContains(t, err, "writing to the host")
}

func TestAReadErrorEndsServeWithIt(t *testing.T) {
	defer goleak.VerifyNone(t)
	rs := startRaw(t, Config{})
	boom := errors.New("device gone")
	require.NoError(t, rs.in.CloseWithError(boom))
	err := rs.wait(t, "a read error")
	require.ErrorIs(t, err, boom, "got %v", err)
}

func TestTheEndOfTheInputIsNotAnError(t *testing.T) {
	defer goleak.VerifyNone(t)
	rs := startRaw(t, Config{})
	rs.send(t, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1"}}`)
	require.EqualValues(t, 1, rs.recv(t)["id"])
	require.NoError(t, rs.in.Close())
	require.NoError(t, rs.wait(t, "the end of the input"))
}

// readLSP reads one Content-Length frame.
func readLSP(t *testing.T, r *bufio.Reader) map[string]any {
	t.Helper()
	length := -1
	for range 10 {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			length, err = strconv.Atoi(v)
			require.NoError(t, err)
		}
	}
	require.GreaterOrEqual(t, length, 0, "no Content-Length")
	body := make([]byte, length)
	_, err := io.ReadFull(r, body)
	require.NoError(t, err)
	var msg map[string]any
	require.NoError(t, json.Unmarshal(body, &msg), "got %s", body)
	return msg
}

func TestLSPHeaderLinesAreBounded(t *testing.T) {
	rs := startRaw(t, Config{Framing: LSP})
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1"}}`
	go func() { // 1 MiB of header line: the server must not keep it
		_, _ = fmt.Fprintf(rs.in, "X-Padding: %s\r\nContent-Length: %d\r\n\r\n%s", strings.Repeat("a", 1<<20), len(init), init)
		_, _ = fmt.Fprintf(rs.in, "Content-Length: %d\r\n\r\n%s", len(init), init)
	}()
	msg := readLSP(t, rs.out)
	errObj, _ := msg["error"].(map[string]any)
	require.NotNil(t, errObj, "got %v, want a -32700 answer to the 1 MiB header line", msg)
	require.EqualValues(t, -32700, errObj["code"])
	require.Contains(t, errObj["message"], fmt.Sprintf("longer than %d bytes", maxHeaderBytes))
	require.Nil(t, msg["id"])
	// The frame whose header was cut has no Content-Length any more; the next one is
	// served.
	for range 3 {
		msg = readLSP(t, rs.out)
		if msg["id"] != nil {
			break
		}
	}
	require.EqualValues(t, 1, msg["id"], "got %v", msg)
	require.NotNil(t, msg["result"], "got %v", msg)
}
