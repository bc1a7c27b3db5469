package rpc

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Found with issue 19: a retry policy retries a getSnapshot that timed out, and the
// message names the timeout that applied.
func TestRetryRetriesATimedOutGetSnapshot(t *testing.T) {
	rs := startRaw(t, Config{DefaultSource: SourceChannel})
	rs.send(t, `{"jsonrpc":"2.0","id":"open","method":"channel.open","params":{"channel":"w","topic":"t","options":{"callTimeoutMs":50,"retry":{"maxAttempts":3,"initialDelayMs":1,"maxDelayMs":1}}}}`)
	for attempt := 1; attempt <= 3; attempt++ {
		_, method, _ := rs.nextCall(t) // never answered: each attempt times out
		require.Equal(t, "getSnapshot", method, "attempt %d", attempt)
	}
	answer, notes := rs.answerTo(t, "open")
	code, message := errorOf(t, answer)
	require.EqualValues(t, CodeSyncFailed, code)
	require.Contains(t, message, "3 attempts")
	require.Contains(t, message, "50ms, the channel's options.callTimeoutMs")
	require.NotContains(t, message, "--call-timeout")
	require.NotEmpty(t, notes)
}

func TestTheGlobalCallTimeoutIsNamedWhenItApplied(t *testing.T) {
	rs := startRaw(t, Config{DefaultSource: SourceChannel, CallTimeout: 50e6})
	rs.send(t, `{"jsonrpc":"2.0","id":"open","method":"channel.open","params":{"channel":"w","topic":"t"}}`)
	rs.nextCall(t)
	answer, _ := rs.answerTo(t, "open")
	_, message := errorOf(t, answer)
	require.Contains(t, message, "50ms, --call-timeout")
}

func TestAHostErrorAnswerIsEchoedBounded(t *testing.T) {
	rs := startRaw(t, Config{DefaultSource: SourceChannel})
	rs.send(t, `{"jsonrpc":"2.0","id":"open","method":"channel.open","params":{"channel":"w","topic":"t"}}`)
	id, _, _ := rs.nextCall(t)
	huge := strings.Repeat("é", 512<<10) // 1 MiB
	data, _ := json.Marshal(map[string]string{"detail": huge})
	rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"error":{"code":-1,"message":%q,"data":%s}}`, id, huge, data))
	answer, notes := rs.answerTo(t, "open")
	code, message := errorOf(t, answer)
	require.EqualValues(t, CodeSyncFailed, code)
	require.Contains(t, message, "the host answered getSnapshot with error -1: éé")
	require.Contains(t, message, "(1048576 bytes, cut)")
	whole, _ := json.Marshal(answer)
	require.Less(t, len(whole), 8<<10, "the answer echoes the host's error unbounded")
	for _, note := range notes {
		b, _ := json.Marshal(note)
		require.Less(t, len(b), 8<<10, "the error notification echoes the host's error unbounded")
	}
}

func TestResyncIntervalHasAFloor(t *testing.T) {
	rs := startRaw(t, Config{DefaultSource: SourceChannel})
	for _, ms := range []int{1, 99, -1} {
		rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":"open","method":"channel.open","params":{"channel":"w","topic":"t","options":{"resyncIntervalMs":%d}}}`, ms))
		answer, _ := rs.answerTo(t, "open")
		code, message := errorOf(t, answer)
		require.EqualValues(t, -32602, code, "%d ms", ms)
		require.Contains(t, message, "options.resyncIntervalMs")
		require.Contains(t, message, "at least the minimum of 100 milliseconds")
	}
	for i, ms := range []int{0, 100} {
		rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":"open","method":"channel.open","params":{"channel":"w%d","topic":"t","options":{"resyncIntervalMs":%d}}}`, i, ms))
		id, _, _ := rs.nextCall(t)
		rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"revision":"1","data":null}}`, id))
		id, method, _ := rs.nextCall(t)
		require.Equal(t, "apply", method)
		rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{}}`, id))
		answer, _ := rs.answerTo(t, "open")
		require.NotNil(t, answer["result"], "%d ms: %v", ms, answer)
	}
}
