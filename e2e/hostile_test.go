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
