package rpc

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/stretchr/testify/require"
)

// An invalidate notification, the bulk of what a host writes, is read without an
// allocation: the envelope is split in place, the method compared as bytes, and the
// request is the shared notification value.
func TestAdmitAllocatesNothingForAnInvalidateNotification(t *testing.T) {
	c := newConn(NDJSON, strings.NewReader(""), io.Discard, 1<<20, nil)
	frame := []byte(`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"app-config","revision":"42"}}`)
	var (
		req    *jsonrpc2.Request
		params json.RawMessage
		ok     bool
	)
	allocs := testing.AllocsPerRun(100, func() { req, params, ok = c.admit(frame) })
	require.True(t, ok)
	require.Equal(t, "invalidate", req.Method)
	require.True(t, req.Notif)
	require.Equal(t, `{"topic":"app-config","revision":"42"}`, string(params))
	require.Zero(t, allocs, "allocations per invalidate notification")
}

// The method a request names is read as encoding/json reads it, escapes and all; a
// request with an id gets a request value of its own, never a shared one.
func TestAdmitReadsTheMethodAsJSONDoes(t *testing.T) {
	c := newConn(NDJSON, strings.NewReader(""), io.Discard, 1<<20, nil)
	for _, raw := range []string{`"invalidate"`, `"invalid\u0061te"`, `"channel.list"`, `"no.such.method"`, `"caf\u00e9"`, `"é"`} {
		var want string
		require.NoError(t, json.Unmarshal([]byte(raw), &want))
		for _, id := range []string{"", `"id":7,`} {
			frame := fmt.Sprintf(`{"jsonrpc":"2.0",%s"method":%s,"params":{}}`, id, raw)
			req, _, ok := c.admit([]byte(frame))
			require.True(t, ok, frame)
			require.Equal(t, want, req.Method, frame)
			require.Equal(t, id == "", req.Notif, frame)
			for i := range notifications {
				if id != "" {
					require.NotSame(t, &notifications[i], req, "a request with an id shares the notification value of %s", notifications[i].Method)
				}
			}
		}
	}
}

// The shared notification values are read only: after the server has handled a
// notification of every method (valid, invalid, refused as request-only), each is still
// what admit hands out.
func TestSharedNotificationsStayUnchanged(t *testing.T) {
	rs := startWithChannels(t, "w1")
	for _, m := range methods {
		if m == "shutdown" {
			continue // refused as a notification, but the last thing a test would send
		}
		for _, params := range []string{`{"topic":"t","revision":"1"}`, `{"channel":"w1"}`, `{"topic":"t","data":{"a":1}}`, `[1]`, `"x"`} {
			rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"params":%s}`, m, params))
		}
	}
	rs.send(t, `{"jsonrpc":"2.0","method":"shutdown"}`)
	require.Equal(t, []string{"w1"}, rs.openChannels(t)) // every notification was read
	for i, m := range methods {
		require.Equal(t, jsonrpc2.Request{Method: m, Notif: true}, notifications[i])
	}
}

// Every name in methods is a method Server.handle serves (a misspelt one would leave
// that method's notifications to a decode and an allocation each).
func TestMethodsListsEveryMethod(t *testing.T) {
	rs := startWithChannels(t)
	for _, m := range methods {
		if m == "shutdown" {
			continue
		}
		rs.send(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":%q,"params":{}}`, m))
		answer, _ := rs.answerTo(t, 1)
		if e, ok := answer["error"].(map[string]any); ok {
			require.NotEqualValues(t, jsonrpc2.CodeMethodNotFound, e["code"], "%s: %v", m, e["message"])
		}
	}
}
