package rpc

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/store"
)

// The one-reading rule (issue 19): the sidecar refuses every message that encoding/json
// and JavaScript's JSON.parse would read differently, at every level it decodes, so that
// a relay checking a window's message and the sidecar executing it act on the same one.

// recvWithin is recv bounded in time: a message the server never sends fails the test
// instead of hanging it.
func (rs *rawServer) recvWithin(t *testing.T) map[string]any {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		line, _ := rs.out.ReadBytes('\n')
		got <- line
	}()
	select {
	case line := <-got:
		var msg map[string]any
		require.NoError(t, json.Unmarshal(line, &msg), "got %q", line)
		return msg
	case <-time.After(serveBound):
		t.Fatalf("no message from the server within %v", serveBound)
		return nil
	}
}

// answerTo reads the server's output up to the answer with id, returning it and the
// notifications before it.
func (rs *rawServer) answerTo(t *testing.T, id any) (answer map[string]any, notes []map[string]any) {
	t.Helper()
	for range 100 {
		msg := rs.recvWithin(t)
		if _, isNote := msg["method"]; isNote {
			notes = append(notes, msg)
			continue
		}
		require.Equal(t, fmt.Sprint(id), fmt.Sprint(msg["id"]), "got %v", msg)
		return msg, notes
	}
	t.Fatalf("no answer to %v in 100 messages", id)
	return nil, nil
}

func errorOf(t *testing.T, msg map[string]any) (code float64, message string) {
	t.Helper()
	e, ok := msg["error"].(map[string]any)
	require.True(t, ok, "want an error answer, got %v", msg)
	return e["code"].(float64), e["message"].(string)
}

// openChannels lists the open channels, a barrier too: everything sent before is read.
func (rs *rawServer) openChannels(t *testing.T) []string {
	t.Helper()
	rs.send(t, `{"jsonrpc":"2.0","id":"list","method":"channel.list"}`)
	answer, _ := rs.answerTo(t, "list")
	var names []string
	for _, ch := range answer["result"].(map[string]any)["channels"].([]any) {
		names = append(names, ch.(map[string]any)["channel"].(string))
	}
	return names
}

func startWithChannels(t *testing.T, names ...string) *rawServer {
	t.Helper()
	rs := startRaw(t, Config{Store: store.NewMemory(1 << 20)})
	for _, name := range names {
		rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":"open","method":"channel.open","params":{"channel":%q,"topic":"t"}}`, name))
		answer, _ := rs.answerTo(t, "open")
		require.NotNil(t, answer["result"], "opening %s: %v", name, answer)
	}
	return rs
}

func TestTheEnvelopeHasOneReading(t *testing.T) {
	rs := startWithChannels(t, "a-chan")
	for _, tc := range []struct{ line, names string }{
		{`{"jsonrpc":"2.0","id":1,"method":"channel.list","Method":"shutdown"}`, `Method: unknown member`},
		{`{"jsonrpc":"2.0","id":1,"method":"channel.list","method":"shutdown"}`, `method: the member appears twice`},
		{`{"jsonrpc":"2.0","id":1,"method":"channel.list","\u006dethod":"shutdown"}`, `method: the member appears twice`},
		{`{"jsonrpc":"2.0","ID":"x","method":"shutdown"}`, `ID: unknown member`},
		{`{"jſonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"shutdown"}`, `differs only in case from "jsonrpc"`},
		{`{"jsonrpc":"2.0","id":1,"method":"channel.close","paramſ":{"channel":"a-chan"}}`, `differs only in case from "params"`},
	} {
		rs.send(t, tc.line)
		answer, _ := rs.answerTo(t, nil)
		code, message := errorOf(t, answer)
		require.EqualValues(t, -32600, code, "%s: %s", tc.line, message)
		require.Contains(t, message, tc.names, tc.line)
	}
	// A lone surrogate in the id: the id has no one reading either.
	rs.send(t, `{"jsonrpc":"2.0","id":"x\ud800","method":"channel.list"}`)
	answer, _ := rs.answerTo(t, nil)
	code, _ := errorOf(t, answer)
	require.EqualValues(t, -32600, code)
	require.Equal(t, []string{"a-chan"}, rs.openChannels(t), "nothing was closed or shut down")
}

func TestParamsHaveOneReading(t *testing.T) {
	rs := startWithChannels(t, "a-chan", "b-chan")
	for _, tc := range []struct{ method, params, names string }{
		{"channel.close", `{"channel":"a-chan","Channel":"b-chan"}`, `Channel: unknown member, differs only in case from "channel"`},
		{"channel.close", `{"channel":"a-chan","channel":"b-chan"}`, `channel: the member appears twice`},
		{"channel.status", `{"CHANNEL":"b-chan"}`, `CHANNEL`},
		{"channel.close", `{"channel":"b-chan\udbff"}`, `channel: the string has a lone surrogate escape`},
		{"channel.open", `{"channel":"c\ud800","topic":"t"}`, `channel: the string has a lone surrogate`},
		{"channel.open", `{"channel":"c","topic":"t","options":{"CallTimeoutMs":5}}`, `options.CallTimeoutMs`},
		{"channel.open", `{"channel":"c","topic":"t","options":{"callTimeoutMs":5,"callTimeoutMs":6}}`, `options.callTimeoutMs: the member appears twice`},
		{"channel.open", `{"channel":"c","topic":"t","options":{"retry":{"maxAttempts":1,"MaxAttempts":2}}}`, `options.retry.MaxAttempts`},
		{"state.set", `{"topic":"t","data":1,"sourceId":"w\ud800"}`, `sourceId: the string has a lone surrogate`},
		{"state.set", `{"topic":"t","data":1,"Data":2}`, `Data: unknown member`},
		{"state.get", `{"topic":"t","topic":"u"}`, `topic: the member appears twice`},
		{"invalidate", `{"topic":"t","revision":"1","Channel":"b-chan"}`, `Channel`},
		{"invalidate", `{"topic":"t","revision":"1","channel":"a-chan","channel":"b-chan"}`, `channel: the member appears twice`},
		// The ingest fast path gives up on these, and the general path refuses them.
		{"invalidate", `{"topic":"t","Topic":"u","revision":"1"}`, `Topic: unknown member, differs only in case from "topic"`},
		{"invalidate", `{"topic":null,"topic":"t","revision":"1"}`, `topic: the member appears twice`},
		{"invalidate", `{"topic":"t\ud800","revision":"1"}`, `topic: the string has a lone surrogate`},
	} {
		rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":"x","method":%q,"params":%s}`, tc.method, tc.params))
		answer, _ := rs.answerTo(t, "x")
		code, message := errorOf(t, answer)
		require.EqualValues(t, -32602, code, "%s %s: %s", tc.method, tc.params, message)
		require.Contains(t, message, tc.names, "%s %s", tc.method, tc.params)
		require.Less(t, len(message), 400)
	}
	require.Equal(t, []string{"a-chan", "b-chan"}, rs.openChannels(t))
}

func TestRequestOnlyMethodsAreRefusedAsNotifications(t *testing.T) {
	rs := startWithChannels(t, "a-chan")
	for _, method := range []string{"channel.close", "shutdown", "channel.open", "channel.refresh", "channel.status", "channel.list", "state.set", "state.get", "state.patch", "state.delete", "initialize"} {
		// One write: the pipe is unbuffered, and the server writes its notification
		// before it reads on.
		rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"params":{"channel":"a-chan","topic":"t","data":1,"protocolVersion":"1"}}`, method)+"\n"+
			`{"jsonrpc":"2.0","id":"list","method":"channel.list"}`)
		answer, notes := rs.answerTo(t, "list")
		require.Len(t, notes, 1, "%s: want one error notification", method)
		require.Equal(t, "error", notes[0]["method"])
		params := notes[0]["params"].(map[string]any)
		require.Equal(t, "protocol", params["phase"], method)
		message := params["error"].(map[string]any)["message"].(string)
		require.Contains(t, message, method)
		require.Contains(t, message, "send it with an id")
		require.Len(t, answer["result"].(map[string]any)["channels"], 1, "%s as a notification must change nothing", method)
	}
	// invalidate stays a notification: no error for a valid one.
	rs.send(t, `{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"other","revision":"1"}}`+"\n"+
		`{"jsonrpc":"2.0","id":"list","method":"channel.list"}`)
	_, notes := rs.answerTo(t, "list")
	require.Empty(t, notes)
	// Still serving: the shutdown notification did not stop it.
	require.Equal(t, []string{"a-chan"}, rs.openChannels(t))
}

// hostServer is a server whose channels use source host, the test answering its calls.
func hostServer(t *testing.T, cfg Config) *rawServer {
	t.Helper()
	cfg.DefaultSource = SourceHost
	return startRaw(t, cfg)
}

// nextCall reads the server's output up to its next call to the host, returning its id
// and method, and the messages before it.
func (rs *rawServer) nextCall(t *testing.T) (id, method string, before []map[string]any) {
	t.Helper()
	for range 100 {
		msg := rs.recvWithin(t)
		if m, ok := msg["method"].(string); ok && msg["id"] != nil {
			return fmt.Sprint(msg["id"]), m, before
		}
		before = append(before, msg)
	}
	t.Fatal("no call to the host in 100 messages")
	return "", "", nil
}

func TestHostAnswersHaveOneReading(t *testing.T) {
	for _, tc := range []struct{ result, phase, names string }{
		{`{"revision":"1","Revision":"2","data":1}`, "getSnapshot", `Revision: unknown member, differs only in case from "revision"`},
		{`{"revision":"1","revision":"2","data":1}`, "getSnapshot", `revision: the member appears twice`},
		{`{"revision":"1","epoch":"e\ud800","data":1}`, "getSnapshot", `epoch`},
		// Issue 13: a bad answer is reported under getSnapshot, saying what is wrong.
		{`{"data":1}`, "getSnapshot", `revision: is missing`},
		{`{"revision":42,"data":1}`, "getSnapshot", `revision: must be a string`},
	} {
		t.Run(tc.result, func(t *testing.T) {
			rs := hostServer(t, Config{})
			rs.send(t, `{"jsonrpc":"2.0","id":"open","method":"channel.open","params":{"channel":"w","topic":"t"}}`)
			id, method, _ := rs.nextCall(t)
			require.Equal(t, "getSnapshot", method)
			rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":%s}`, id, tc.result))
			answer, notes := rs.answerTo(t, "open")
			code, message := errorOf(t, answer)
			require.EqualValues(t, CodeSyncFailed, code, message)
			require.Contains(t, message, tc.names)
			require.NotEmpty(t, notes)
			params := notes[0]["params"].(map[string]any)
			require.Equal(t, tc.phase, params["phase"], "%v", params)
			require.Contains(t, params["error"].(map[string]any)["message"], tc.names)
		})
	}
}

func TestFastPathsStayTheCommonPath(t *testing.T) {
	// splitEnvelope takes the usual message, and gives up on every spelling the strict
	// path must see.
	var env envelope
	require.True(t, splitEnvelope([]byte(`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"t","revision":"1"}}`), &env))
	for _, line := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"a","Method":"b"}`,
		`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
		`{"jsonrpc":"2.0","id":1,"\u006dethod":"a"}`,
		`{"jſonrpc":"2.0","id":1,"method":"a"}`,
	} {
		require.False(t, splitEnvelope([]byte(line), &env), line)
	}
}

// Issue 13: a message that starts with a byte order mark says so.
func TestAByteOrderMarkIsNamed(t *testing.T) {
	rs := startRaw(t, Config{})
	rs.send(t, "\xef\xbb\xbf"+`{"jsonrpc":"2.0","id":1,"method":"channel.list"}`)
	answer, _ := rs.answerTo(t, nil)
	code, message := errorOf(t, answer)
	require.EqualValues(t, -32700, code)
	require.Contains(t, message, "byte order mark")
}
