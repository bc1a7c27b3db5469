//go:build linux

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/sidecar"
)

// Hostile input (issue 18): frames and names a host should never send, and what the
// sidecar does with them. docs/security.md states each rule.

// startCaptured spawns the sidecar with its stderr kept for the test.
func startCaptured(t *testing.T, host *fakeHost, framing string, args ...string) (*sidecar.Client, *stderrCapture) {
	t.Helper()
	stderr := &stderrCapture{}
	c, err := sidecar.Start(context.Background(), sidecar.Options{Path: binary, Args: append([]string{"--framing", framing}, args...), Handler: host, Stderr: stderr, Framing: framing, Record: host.recorder()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(5 * time.Second) })
	return c, stderr
}

// requireExit waits for the sidecar to exit and checks its exit code.
func requireExit(t *testing.T, c *sidecar.Client, code int, stderr *stderrCapture) {
	t.Helper()
	select {
	case <-c.Exited():
	case <-time.After(testTimeout):
		t.Fatalf("the sidecar did not exit within %v; stderr: %s", testTimeout, stderr)
	}
	require.Equal(t, code, c.ExitCode(), "exit code; stderr: %s", stderr)
}

// An LSP header whose Content-Length is over --max-message-bytes, or is not a byte count,
// leaves no way to find the next frame: the sidecar answers it (id null), says why on
// stderr and exits 1, rather than wait forever for bytes that never come.
func TestLSPContentLengthOverTheLimitIsFatal(t *testing.T) {
	for _, tc := range []struct {
		what, value string
		code        int64
		says        string
	}{
		{"2^62", "4611686018427387904", -32600, "--max-message-bytes"},
		{"just over the limit", "4097", -32600, "--max-message-bytes"},
		{"beyond int64", "99999999999999999999", -32600, "--max-message-bytes"},
		{"negative", "-1", -32700, "bad Content-Length"},
		{"not a number", "twelve", -32700, "bad Content-Length"},
		{"signed", "+12", -32700, "bad Content-Length"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			host := newFakeHost()
			c, stderr := startCaptured(t, host, "lsp", "--max-message-bytes", "4096")
			call(t, c, "initialize", map[string]string{"protocolVersion": "1"})
			// The body that follows is what a host that lied about the length would send.
			require.NoError(t, c.WriteRaw([]byte("Content-Length: "+tc.value+"\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"channel.list\"}")))
			requireExit(t, c, 1, stderr)
			answers := errorAnswers(host)
			require.Len(t, answers, 1, "answers: %v", answers)
			require.Contains(t, answers[0], `"id":null`)
			require.Contains(t, answers[0], fmt.Sprintf(`"code":%d`, tc.code))
			require.Contains(t, answers[0], tc.says)
			require.Contains(t, stderr.String(), "LSP framing error", "stderr says why the sidecar stopped")
			require.Contains(t, stderr.String(), tc.says)
			for _, f := range host.frames.all() {
				require.False(t, strings.HasPrefix(f, "<- ") && strings.Contains(f, `"id":9`), "the frame after the bad header was served: %s", f)
			}
		})
	}
}

// A 100 MiB line over a 16 MiB --max-message-bytes is discarded as it streams in: the
// sidecar's peak resident memory (VmHWM, so no timing is involved) grows by about the
// limit, not by a multiple of it, and the next message is served. The plain binary: the
// race detector's shadow memory would blur the figure.
func TestOversizedLineHoldsAtMostTheLimit(t *testing.T) {
	const limit = 16 << 20
	host := newFakeHost()
	c := startPlain(t, host, "--max-message-bytes", fmt.Sprint(limit))
	call(t, c, "initialize", map[string]string{"protocolVersion": "1"})
	before, err := procStatusKiB(c.Pid(), "VmHWM")
	require.NoError(t, err)
	chunk := []byte(strings.Repeat("y", 1<<20))
	require.NoError(t, c.WriteRaw([]byte(`{"jsonrpc":"2.0","id":1,"method":"state.set","params":{"topic":"t","data":"`)))
	for range 100 {
		require.NoError(t, c.WriteRaw(chunk))
	}
	require.NoError(t, c.WriteRaw([]byte("\"}}\n")))
	call(t, c, "channel.list", nil) // answered after the oversized line was skipped
	peak, err := procStatusKiB(c.Pid(), "VmHWM")
	require.NoError(t, err)
	t.Logf("peak resident memory: %d KiB idle, %d KiB after a 100 MiB line over a %d MiB limit", before, peak, limit>>20)
	// The limit, plus room for the runtime (GC metadata, the read buffer): a reader that
	// grows one buffer by appending keeps several generations of it (about 4x the limit).
	require.Less(t, peak-before, (limit+limit/2)>>10, "a 100 MiB line over a 16 MiB limit grew peak resident memory by %d KiB", peak-before)
	answers := errorAnswers(host)
	require.Len(t, answers, 1, "answers: %v", answers)
	require.Contains(t, answers[0], `"code":-32600`)
}
