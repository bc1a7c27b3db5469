//go:build linux

package e2e

import (
	"context"
	"encoding/json"
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

// Bytes that are not UTF-8 are refused at the door, in both framings: a state.set whose
// data holds them is answered -32602 naming where, and nothing is stored or applied; a
// frame with them elsewhere is a parse error; a getSnapshot answer holding them fails the
// fetch (an error notification), and no apply goes out. JSON text is UTF-8 (RFC 8259
// §8.1): strict readers (Rust's serde_json in a Tauri host, Python's json) would refuse
// every later apply of such a topic.
func TestInvalidUTF8IsRefusedAtTheDoor(t *testing.T) {
	for _, framing := range []string{"ndjson", "lsp"} {
		t.Run(framing, func(t *testing.T) {
			host := newFakeHost()
			c, _ := startCaptured(t, host, framing)
			call(t, c, "state.set", map[string]any{"topic": "t", "data": "ok"})
			call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "t"})

			e := callErr(t, c, "state.set", json.RawMessage("{\"topic\":\"t\",\"data\":{\"name\":\"\xc3(\xff\"}}"))
			require.EqualValues(t, -32602, e.Code, "%s", e.Message)
			require.Contains(t, e.Message, "params.data.name")
			require.Contains(t, e.Message, "not valid UTF-8")
			got := call(t, c, "state.get", map[string]string{"topic": "t"})
			require.JSONEq(t, `"ok"`, string(mustField(t, got, "data")), "state.get after the refused write")
			require.JSONEq(t, `"1"`, string(mustField(t, got, "revision")))
			// The next write takes the next revision, and is the only apply since the open.
			call(t, c, "state.set", map[string]any{"topic": "t", "data": "ok again"})
			host.waitFor(t, "revision 2 applied", func() bool { return host.lastApplied("w") == "2" })
			host.mu.Lock()
			require.Equal(t, []string{"1", "2"}, host.applied["w"])
			host.mu.Unlock()

			// Outside params (here, the method name), or in a notification: a parse error.
			require.NoError(t, c.WriteRaw(frameFor(framing, "{\"jsonrpc\":\"2.0\",\"id\":41,\"method\":\"state.\xff\",\"params\":{}}")))
			require.NoError(t, c.WriteRaw(frameFor(framing, "{\"jsonrpc\":\"2.0\",\"method\":\"invalidate\",\"params\":{\"topic\":\"t\xc3\",\"revision\":\"9\"}}")))
			call(t, c, "channel.list", nil)
			var answers []string
			for _, a := range errorAnswers(host) {
				if strings.Contains(a, `"id":null`) {
					answers = append(answers, a)
				}
			}
			require.Len(t, answers, 2, "answers: %v", answers)
			for _, a := range answers {
				require.Contains(t, a, `"code":-32700`)
				require.Contains(t, a, "not valid UTF-8")
			}

			// A host answering getSnapshot with bytes that are not UTF-8.
			host.set("h", "1", `{"name":"fine"}`)
			call(t, c, "channel.open", map[string]any{"channel": "hw", "topic": "h", "source": "host"})
			host.mu.Lock()
			host.snapshots["h"] = func() (any, error) {
				return json.RawMessage("{\"revision\":\"2\",\"data\":{\"name\":\"\xc3(\xff\"}}"), nil
			}
			host.mu.Unlock()
			call(t, c, "invalidate", map[string]string{"topic": "h", "revision": "2"})
			host.waitFor(t, "an error notification", func() bool { return len(host.errors) > 0 })
			host.mu.Lock()
			report := host.errors[0]
			require.Equal(t, []string{"1"}, host.applied["hw"], "applied despite a snapshot that is not UTF-8")
			delete(host.snapshots, "h")
			host.mu.Unlock()
			require.Equal(t, "hw", report.Channel)
			require.NotNil(t, report.Error.Code)
			require.EqualValues(t, -32602, *report.Error.Code)
			require.Contains(t, report.Error.Message, "result.data.name")
			require.Contains(t, report.Error.Message, "not valid UTF-8")
			// The sidecar goes on: the host's next good snapshot is applied.
			host.set("h", "3", `{"name":"fixed"}`)
			call(t, c, "invalidate", map[string]string{"topic": "h", "revision": "3"})
			host.waitFor(t, "revision 3 applied", func() bool { return host.lastApplied("hw") == "3" })
			host.mu.Lock()
			require.Equal(t, []string{"1", "3"}, host.applied["hw"])
			host.mu.Unlock()
		})
	}
}

// frameFor wraps one message in a framing.
func frameFor(framing, msg string) []byte {
	if framing == "lsp" {
		return fmt.Appendf(nil, "Content-Length: %d\r\n\r\n%s", len(msg), msg)
	}
	return []byte(msg + "\n")
}

func mustField(t *testing.T, raw json.RawMessage, name string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	require.Contains(t, m, name, "%s", raw)
	return m[name]
}

// Topic and channel names are at most 1024 bytes (engine.MaxNameBytes), refused with a
// short -32602 naming the limit wherever a name comes in; names are compared byte for
// byte, never trimmed, so look-alikes are different topics; blank means whitespace as
// JavaScript's trim() defines it, as in the SDK (testdata/names.json).
func TestNameRules(t *testing.T) {
	host := newFakeHost()
	c := start(t, host)
	long := strings.Repeat("n", 1025)
	limit := strings.Repeat("n", 1024)
	for _, tc := range []struct {
		what, method string
		params       map[string]any
		field        string
	}{
		{"state.set topic", "state.set", map[string]any{"topic": long, "data": 1}, "topic"},
		{"state.get topic", "state.get", map[string]any{"topic": long}, "topic"},
		{"channel.open topic", "channel.open", map[string]any{"channel": "w", "topic": long}, "topic"},
		{"channel.open channel", "channel.open", map[string]any{"channel": long, "topic": "t"}, "channel"},
		{"channel.close channel", "channel.close", map[string]any{"channel": long}, "channel"},
		{"invalidate topic", "invalidate", map[string]any{"topic": long, "revision": "1"}, "topic"},
	} {
		e := callErr(t, c, tc.method, tc.params)
		require.EqualValues(t, -32602, e.Code, "%s: %s", tc.what, e.Message)
		require.Contains(t, e.Message, tc.field+": is 1025 bytes long, over the limit of 1024 bytes", tc.what)
		require.Less(t, len(e.Message), 300, "%s: the error echoes the name", tc.what)
	}
	call(t, c, "state.set", map[string]any{"topic": limit, "data": "at the limit"})
	call(t, c, "channel.open", map[string]any{"channel": limit, "topic": limit})
	host.waitFor(t, "the channel named at the limit applied", func() bool { return host.lastApplied(limit) == "1" })

	// Four topics that look alike: Latin, Cyrillic а, fullwidth ａ, a trailing space.
	lookAlikes := []string{"app-config", "аpp-config", "ａpp-config", "app-config "}
	for i, topic := range lookAlikes {
		call(t, c, "state.set", map[string]any{"topic": topic, "data": i})
	}
	for i, topic := range lookAlikes {
		got := call(t, c, "state.get", map[string]string{"topic": topic})
		require.JSONEq(t, fmt.Sprint(i), string(mustField(t, got, "data")), "topic %q", topic)
		require.JSONEq(t, `"1"`, string(mustField(t, got, "revision")), "topic %q", topic)
	}

	// Blank as JavaScript's trim() sees it: a byte order mark is blank, U+0085 is not.
	e := callErr(t, c, "state.set", map[string]any{"topic": "\ufeff", "data": 1})
	require.EqualValues(t, -32602, e.Code)
	require.Contains(t, e.Message, "topic: is empty")
	call(t, c, "state.set", map[string]any{"topic": "\u0085", "data": 1})
}
