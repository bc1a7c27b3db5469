//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/state-sync/state-sync/store"
)

// blockingStdin returns a pipe whose read end is what a spawned process gets as stdin: a
// blocking descriptor the Go runtime cannot poll, so closing it does not end a read in
// progress. The write end is the host's; spare is another descriptor of the read end,
// for the test.
func blockingStdin(t *testing.T) (stdin, host *os.File, spare int) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	fd, err := syscall.Dup(int(r.Fd())) // Fd puts the pipe in blocking mode
	require.NoError(t, err)
	require.NoError(t, r.Close())
	spare, err = syscall.Dup(fd)
	require.NoError(t, err)
	stdin = os.NewFile(uintptr(fd), "stdin")
	require.Error(t, stdin.SetReadDeadline(time.Time{}), "want a descriptor the poller does not know")
	t.Cleanup(func() { _ = stdin.Close(); _ = w.Close() })
	return stdin, w, spare
}

// readBack reads n bytes left unread in the pipe through spare, bounded in time.
func readBack(t *testing.T, fd int, n int) []byte {
	t.Helper()
	require.NoError(t, syscall.SetNonblock(fd, true))
	f := os.NewFile(uintptr(fd), "stdin-readback")
	defer f.Close()
	require.NoError(t, f.SetReadDeadline(time.Now().Add(serveBound)))
	buf := make([]byte, n)
	got, err := io.ReadFull(f, buf)
	require.NoError(t, err, "the frame written after the shutdown answer was taken out of stdin (read back %q)", buf[:got])
	return buf
}

func TestNoFrameIsDispatchedAfterTheShutdownAnswer(t *testing.T) {
	defer goleak.VerifyNone(t)
	stdin, host, spare := blockingStdin(t)
	outR, outW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- NewServer(Config{Store: store.NewMemory(1 << 10)}).Serve(context.Background(), stdin, outW)
	}()
	out := bufio.NewReader(outR)
	recv := func() map[string]any {
		line, err := out.ReadBytes('\n')
		require.NoError(t, err)
		var msg map[string]any
		require.NoError(t, json.Unmarshal(line, &msg), "got %s", line)
		return msg
	}
	_, err := io.WriteString(host, `{"jsonrpc":"2.0","id":1,"method":"channel.open","params":{"channel":"w","topic":"t"}}`+"\n")
	require.NoError(t, err)
	require.EqualValues(t, 1, recv()["id"])
	_, err = io.WriteString(host, `{"jsonrpc":"2.0","id":2,"method":"shutdown"}`+"\n")
	require.NoError(t, err)
	msg := recv()
	require.EqualValues(t, 2, msg["id"], "got %v", msg)
	require.NotNil(t, msg["result"], "got %v", msg)
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(serveBound):
		t.Fatal("Serve did not return after answering shutdown")
	}

	// The host writes once more after the answer: nobody may read it, let alone
	// dispatch it. It is still in the pipe, and no answer comes.
	late := `{"jsonrpc":"2.0","id":3,"method":"channel.list"}` + "\n"
	_, err = io.WriteString(host, late)
	require.NoError(t, err)
	require.Equal(t, late, string(readBack(t, spare, len(late))))
	require.NoError(t, outW.Close())
	rest, err := io.ReadAll(out)
	require.NoError(t, err)
	require.Empty(t, string(rest), "the server wrote after Serve returned")
}
