package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/sidecar"
)

func TestInitializeAnswersVersionAndCapabilities(t *testing.T) {
	c := start(t, newFakeHost())
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
		Server          struct {
			Name string `json:"name"`
		} `json:"server"`
		Capabilities struct {
			Sources []string `json:"sources"`
		} `json:"capabilities"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "initialize", map[string]any{"protocolVersion": "1", "client": map[string]string{"name": "e2e"}}), &res))
	require.Equal(t, "1", res.ProtocolVersion)
	require.Equal(t, "statesync-sidecar", res.Server.Name)
	require.Equal(t, []string{"store", "host", "channel"}, res.Capabilities.Sources)

	e := callErr(t, c, "initialize", map[string]any{"protocolVersion": "2"})
	require.EqualValues(t, -32006, e.Code)
	require.Contains(t, e.Message, "update the sdk-ts package or the sidecar binary")
}

func TestOpenAppliesFirstSnapshotAndCloseRemovesChannel(t *testing.T) {
	host := newFakeHost()
	host.set("app-config", "7", `{"theme":"dark"}`)
	c := start(t, host)
	for _, w := range []string{"w1", "w2", "w3"} {
		var res struct {
			LocalRevision string `json:"localRevision"`
			Source        string `json:"source"`
		}
		require.NoError(t, json.Unmarshal(call(t, c, "channel.open", map[string]any{"channel": w, "topic": "app-config", "source": "host"}), &res))
		require.Equal(t, "7", res.LocalRevision, "open answers after the first apply")
		require.Equal(t, "host", res.Source)
	}
	host.mu.Lock()
	require.Equal(t, map[string][]string{"w1": {"7"}, "w2": {"7"}, "w3": {"7"}}, host.applied)
	host.mu.Unlock()

	var list struct {
		Channels []struct {
			Channel string `json:"channel"`
			State   string `json:"state"`
		} `json:"channels"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "channel.list", nil), &list))
	require.Len(t, list.Channels, 3)
	require.Equal(t, "running", list.Channels[0].State)

	closed := call(t, c, "channel.close", map[string]string{"channel": "w2"})
	require.JSONEq(t, `{"channel":"w2","localRevision":"7"}`, string(closed))
	require.NoError(t, json.Unmarshal(call(t, c, "channel.list", nil), &list))
	require.Len(t, list.Channels, 2)

	e := callErr(t, c, "channel.close", map[string]string{"channel": "w2"})
	require.EqualValues(t, -32001, e.Code)
	e = callErr(t, c, "channel.open", map[string]any{"channel": "w1", "topic": "app-config", "source": "host"})
	require.EqualValues(t, -32002, e.Code)
}

func TestOneInvalidateFansOutWithOneSharedGetSnapshot(t *testing.T) {
	const channels = 50
	host := newFakeHost()
	host.set("doc", "1", `"v1"`)
	c := start(t, host)
	for i := range channels {
		call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("w", i), "topic": "doc", "source": "host"})
	}
	host.mu.Lock()
	before := host.fetches["doc"]
	host.mu.Unlock()

	host.set("doc", "2", `"v2"`)
	var res struct {
		Delivered int `json:"delivered"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "2"}), &res))
	require.Equal(t, channels, res.Delivered)
	host.waitFor(t, "every channel applied revision 2", func() bool {
		for i := range channels {
			if host.lastApplied(fmt.Sprint("w", i)) != "2" {
				return false
			}
		}
		return true
	})
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Equal(t, 1, host.fetches["doc"]-before, "got %d getSnapshot calls for one invalidation over %d channels, want 1", host.fetches["doc"]-before, channels)
}

func TestBurstOfInvalidationsCostsAtMostTwoFetchesPerTopic(t *testing.T) {
	const channels, burst = 20, 1000
	host := newFakeHost()
	host.set("doc", "0", `0`)
	c := start(t, host)
	for i := range channels {
		call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("w", i), "topic": "doc", "source": "host"})
	}
	host.mu.Lock()
	before := host.fetches["doc"]
	host.hold = make(chan struct{}) // the first fetch waits until the burst is in
	hold := host.hold
	host.mu.Unlock()

	host.set("doc", fmt.Sprint(burst), fmt.Sprint(burst))
	for i := 1; i <= burst; i++ {
		require.NoError(t, c.Notify("invalidate", map[string]string{"topic": "doc", "revision": fmt.Sprint(i)}))
	}
	call(t, c, "channel.list", nil) // every notification before this request has been handled
	host.mu.Lock()
	host.hold = nil
	host.mu.Unlock()
	close(hold)
	host.waitFor(t, "every channel at the final revision", func() bool {
		for i := range channels {
			if host.lastApplied(fmt.Sprint("w", i)) != fmt.Sprint(burst) {
				return false
			}
		}
		return true
	})
	host.mu.Lock()
	defer host.mu.Unlock()
	fetches := host.fetches["doc"] - before
	require.LessOrEqual(t, fetches, 2, "got %d getSnapshot calls for a burst of %d over %d channels, want ≤ 2", fetches, burst, channels)
	for i := range channels {
		require.LessOrEqual(t, len(host.applied[fmt.Sprint("w", i)]), 3, "channel w%d applied %v", i, host.applied[fmt.Sprint("w", i)])
	}
}

func TestChannelSourceAsksTheChannelsOwnProvider(t *testing.T) {
	host := newFakeHost()
	host.perChan["a"] = snapshot{Revision: "3", Data: json.RawMessage(`"from a"`)}
	host.perChan["b"] = snapshot{Revision: "5", Data: json.RawMessage(`"from b"`)}
	var got = map[string]string{}
	host.onApply = func(p applyParams) { got[p.Channel] = string(p.Data) }
	c := start(t, host)
	call(t, c, "channel.open", map[string]any{"channel": "a", "topic": "draft", "source": "channel"})
	call(t, c, "channel.open", map[string]any{"channel": "b", "topic": "draft", "source": "channel"})
	host.mu.Lock()
	require.Equal(t, map[string]int{"a": 1, "b": 1}, host.chanFetch)
	require.Equal(t, map[string]string{"a": `"from a"`, "b": `"from b"`}, got)
	host.perChan["a"] = snapshot{Revision: "4", Data: json.RawMessage(`"a4"`)}
	host.mu.Unlock()

	// A channel-scoped invalidate reaches only its channel.
	var res struct {
		Delivered int `json:"delivered"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "invalidate", map[string]string{"topic": "draft", "revision": "4", "channel": "a"}), &res))
	require.Equal(t, 1, res.Delivered)
	host.waitFor(t, "a applied 4", func() bool { return host.lastApplied("a") == "4" })
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Equal(t, []string{"5"}, host.applied["b"])
	require.Equal(t, 1, host.chanFetch["b"])
}

func TestStaleAndGarbageEventsAreReportedAndIgnored(t *testing.T) {
	host := newFakeHost()
	host.set("doc", "5", `"five"`)
	c := start(t, host)
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "doc", "source": "host"})

	// Stale: ignored and counted, no fetch.
	call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "4"})
	call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "5"})
	var st struct {
		Counters struct {
			IgnoredEvents int `json:"ignoredEvents"`
		} `json:"counters"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "channel.status", map[string]string{"channel": "w"}), &st))
	require.Equal(t, 2, st.Counters.IgnoredEvents)

	// Garbage as a request: -32602 naming the field.
	e := callErr(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "007"})
	require.EqualValues(t, -32602, e.Code)
	require.Contains(t, e.Message, "revision")
	require.Contains(t, e.Message, "leading zeros")
	e = callErr(t, c, "invalidate", map[string]any{"topic": "  ", "revision": "1"})
	require.EqualValues(t, -32602, e.Code)
	require.Contains(t, e.Message, "topic")

	// Garbage as a notification: an error notification with phase protocol.
	require.NoError(t, c.Notify("invalidate", map[string]any{"topic": "doc", "revision": 9}))
	host.waitFor(t, "a protocol error", func() bool { return len(host.errors) > 0 })
	host.mu.Lock()
	require.Equal(t, "protocol", host.errors[0].Phase)
	require.Equal(t, "doc", host.errors[0].Topic)
	require.Contains(t, host.errors[0].Error.Message, "revision")
	fetches := host.fetches["doc"]
	host.mu.Unlock()

	// The channel still works.
	host.set("doc", "6", `"six"`)
	call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "6"})
	host.waitFor(t, "revision 6 applied", func() bool { return host.lastApplied("w") == "6" })
	host.mu.Lock()
	require.Equal(t, fetches+1, host.fetches["doc"])
	host.mu.Unlock()
}

func TestHostErrorsAndTimeoutsAreReportedAndNotFatal(t *testing.T) {
	host := newFakeHost()
	host.set("doc", "1", `1`)
	c := start(t, host, "--call-timeout", "300ms")
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "doc", "source": "host"})

	// An error answer keeps the host's code.
	host.mu.Lock()
	host.failNext["doc"] = &sidecar.RPCError{Code: -32050, Message: "database locked", Data: json.RawMessage(`{"retryAfterMs":50}`)}
	host.state["doc"] = snapshot{Revision: "2", Data: json.RawMessage(`2`)}
	host.mu.Unlock()
	call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "2"})
	host.waitFor(t, "a getSnapshot error", func() bool { return len(host.errors) == 1 })
	host.mu.Lock()
	got := host.errors[0]
	host.mu.Unlock()
	require.Equal(t, "getSnapshot", got.Phase)
	require.Equal(t, "w", got.Channel)
	require.NotNil(t, got.Error.Code)
	require.EqualValues(t, -32050, *got.Error.Code)
	require.Contains(t, got.Error.Message, "database locked")
	require.JSONEq(t, `{"retryAfterMs":50}`, string(got.Error.Data), "the host's error data comes back untouched")
	require.Equal(t, "1", got.LocalRevision)

	// A host that never answers costs one timeout.
	host.mu.Lock()
	host.hang = true
	host.mu.Unlock()
	e := callErr(t, c, "channel.refresh", map[string]string{"channel": "w"})
	require.EqualValues(t, -32007, e.Code)
	require.Contains(t, e.Message, "getSnapshot")
	require.Regexp(t, "timed out|did not answer", e.Message)

	// And the next refresh works.
	host.mu.Lock()
	host.hang = false
	host.mu.Unlock()
	res := call(t, c, "channel.refresh", map[string]string{"channel": "w"})
	require.JSONEq(t, `{"channel":"w","localRevision":"2"}`, string(res))
}

func TestApplyErrorDoesNotAdvanceLocalRevision(t *testing.T) {
	host := newFakeHost()
	host.set("doc", "1", `1`)
	c := start(t, host)
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "doc", "source": "host"})
	host.mu.Lock()
	host.applyErr["w"] = &sidecar.RPCError{Code: -32000, Message: "window is busy"}
	host.state["doc"] = snapshot{Revision: "2", Data: json.RawMessage(`2`)}
	host.mu.Unlock()
	call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "2"})
	host.waitFor(t, "an apply error", func() bool { return len(host.errors) == 1 })
	host.mu.Lock()
	require.Equal(t, "apply", host.errors[0].Phase)
	delete(host.applyErr, "w")
	host.mu.Unlock()
	var st struct {
		LocalRevision string `json:"localRevision"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "channel.status", map[string]string{"channel": "w"}), &st))
	require.Equal(t, "1", st.LocalRevision)
	res := call(t, c, "channel.refresh", map[string]string{"channel": "w"})
	require.JSONEq(t, `{"channel":"w","localRevision":"2"}`, string(res))
}

func TestNoApplyAfterCloseAnswerEvenWithSnapshotInFlight(t *testing.T) {
	host := newFakeHost()
	host.set("doc", "1", `1`)
	c := start(t, host)
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "doc", "source": "host"})
	host.mu.Lock()
	host.hold = make(chan struct{})
	hold := host.hold
	host.state["doc"] = snapshot{Revision: "2", Data: json.RawMessage(`2`)}
	fetches := host.fetches["doc"]
	host.mu.Unlock()

	call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "2"})
	host.waitFor(t, "getSnapshot in flight", func() bool { return host.fetches["doc"] == fetches+1 })
	call(t, c, "channel.close", map[string]string{"channel": "w"})
	framesAtClose := len(host.frames.all())
	close(hold) // the host answers after the close: the sidecar must drop it

	// Round trips after the release: if an apply were coming, it would be sent by now.
	for range 20 {
		call(t, c, "channel.list", nil)
	}
	for _, f := range host.frames.all()[framesAtClose:] {
		require.NotContains(t, f, `"method":"apply"`, "apply sent after the channel.close answer")
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Equal(t, []string{"1"}, host.applied["w"])
}

func TestCloseWhileOpenIsWaitingForTheHost(t *testing.T) {
	host := newFakeHost()
	host.set("doc", "1", `1`)
	host.hold = make(chan struct{})
	c := start(t, host)
	opened := make(chan error, 1)
	go func() {
		opened <- c.Call(testContext(t), "channel.open", map[string]any{"channel": "w", "topic": "doc", "source": "host"}, nil)
	}()
	host.waitFor(t, "getSnapshot in flight", func() bool { return host.fetches["doc"] == 1 })
	call(t, c, "channel.close", map[string]string{"channel": "w"})
	err := <-opened
	var rpcErr *sidecar.RPCError
	require.ErrorAs(t, err, &rpcErr)
	require.EqualValues(t, -32001, rpcErr.Code, "%s %s", rpcErr.Message, rpcErr.Data)
	close(host.hold)
	for range 10 {
		call(t, c, "channel.list", nil)
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Empty(t, host.applied["w"])
}

func TestSourceConflictsAreClearErrors(t *testing.T) {
	host := newFakeHost()
	host.set("h", "1", `1`)
	c := start(t, host)
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "h", "source": "host"})
	e := callErr(t, c, "channel.open", map[string]any{"channel": "x", "topic": "h", "source": "channel"})
	require.EqualValues(t, -32004, e.Code)
	require.Contains(t, e.Message, `open this channel with source "host"`)
	e = callErr(t, c, "state.set", map[string]any{"topic": "h", "data": 1})
	require.EqualValues(t, -32004, e.Code)

	call(t, c, "state.set", map[string]any{"topic": "s", "data": 1})
	e = callErr(t, c, "invalidate", map[string]string{"topic": "s", "revision": "9"})
	require.EqualValues(t, -32004, e.Code)
	e = callErr(t, c, "channel.open", map[string]any{"channel": "y", "topic": "s", "source": "host"})
	require.EqualValues(t, -32004, e.Code)
}

func TestBadParamsNameTheField(t *testing.T) {
	c := start(t, newFakeHost())
	for _, tc := range []struct {
		method string
		params any
		field  string
	}{
		{"channel.open", map[string]any{"topic": "t"}, "channel"},
		{"channel.open", map[string]any{"channel": "w"}, "topic"},
		{"channel.open", map[string]any{"channel": 5, "topic": "t"}, "channel"},
		{"channel.open", map[string]any{"channel": "w", "topic": "t", "source": "cloud"}, "source"},
		{"channel.open", map[string]any{"channel": "w", "topic": "t", "options": map[string]any{"callTimeoutMs": -1}}, "callTimeoutMs"},
		{"channel.close", []int{1}, "params"},
		{"state.set", map[string]any{"topic": "t"}, "data"},
		{"state.set", map[string]any{"topic": "t", "data": 1, "expectedRevision": "01"}, "expectedRevision"},
		{"initialize", map[string]any{}, "protocolVersion"},
		{"state.set", map[string]any{"topic": "t", "data": 1, "expectedRevison": "1"}, "expectedRevison: unknown member"},
		{"channel.open", map[string]any{"channel": "w", "topic": "t", "options": map[string]any{"callTimeout": 5}}, "options.callTimeout: unknown member"}, // issue 13: the full path
		{"invalidate", map[string]any{"topic": "t", "revision": "1", "channel": ""}, "channel: is empty"},
	} {
		e := callErr(t, c, tc.method, tc.params)
		require.EqualValues(t, -32602, e.Code, "%s %v: %s", tc.method, tc.params, e.Message)
		require.Contains(t, e.Message, tc.field, "%s %v", tc.method, tc.params)
	}
	e := callErr(t, c, "channel.sing", nil)
	require.EqualValues(t, -32601, e.Code)
}

func TestMalformedInputIsAnsweredAndServingGoesOn(t *testing.T) {
	host := newFakeHost()
	var parseErrors []string
	c := start(t, host, "--max-message-bytes", "2048")
	lines := []string{
		"not json",
		`{"jsonrpc":"2.0","id":1,"method":`,
		`[{"jsonrpc":"2.0","id":1,"method":"initialize"}]`,
		`42`,
		`{"id":7,"method":"initialize","params":{"protocolVersion":"1"}}`,
		`{"jsonrpc":"2.0","id":8}`,
		`{"jsonrpc":"2.0","id":9,"method":"x","params":"` + strings.Repeat("a", 4096) + `"}`,
		"",
		"   ",
		"{\r",
	}
	for _, l := range lines {
		require.NoError(t, c.WriteRaw([]byte(l+"\n")))
	}
	res := call(t, c, "initialize", map[string]string{"protocolVersion": "1"})
	require.Contains(t, string(res), `"protocolVersion":"1"`)
	for _, f := range host.frames.all() {
		if strings.HasPrefix(f, "<- ") && strings.Contains(f, `"error"`) {
			parseErrors = append(parseErrors, f)
		}
	}
	want := []string{`-32700`, `-32700`, `-32600`, `-32600`, `-32600`, `-32600`, `-32600`, `-32700`}
	require.Len(t, parseErrors, len(want), "answers: %v", parseErrors)
	for i, code := range want {
		require.Contains(t, parseErrors[i], `"code":`+code, "answer %d to %q", i, parseErrors[i])
	}
	require.Contains(t, parseErrors[0], `"id":null`)
	require.Contains(t, parseErrors[4], `"id":7`)
}

func TestLSPFraming(t *testing.T) {
	host := newFakeHost()
	c := start(t, host, "--framing", "lsp")
	call(t, c, "initialize", map[string]string{"protocolVersion": "1"})
	call(t, c, "state.set", map[string]any{"topic": "t", "data": map[string]int{"n": 1}})
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "t"})
	host.mu.Lock()
	require.Equal(t, []string{"1"}, host.applied["w"])
	host.mu.Unlock()
	require.NoError(t, c.WriteRaw([]byte("Content-Length: 3\r\n\r\n{x}")))
	call(t, c, "channel.list", nil)
}

func TestExitsPromptlyOnEOFShutdownAndSignals(t *testing.T) {
	const bound = exitBound
	open := func(t *testing.T) *sidecar.Client {
		host := newFakeHost()
		host.set("doc", "1", `1`)
		c := start(t, host)
		for i := range 20 {
			call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("w", i), "topic": "doc", "source": "host"})
		}
		return c
	}
	exitTime := func(t *testing.T, c *sidecar.Client, from time.Time) time.Duration {
		select {
		case <-c.Exited():
		case <-time.After(testTimeout):
			t.Fatal("sidecar did not exit")
		}
		took := time.Since(from)
		require.Equal(t, 0, c.ExitCode())
		t.Logf("exited in %s", took)
		return took
	}
	t.Run("stdin EOF", func(t *testing.T) {
		c := open(t)
		from := time.Now()
		go func() { _ = c.Close(testTimeout) }()
		require.Less(t, exitTime(t, c, from), bound)
	})
	t.Run("shutdown request", func(t *testing.T) {
		c := open(t)
		from := time.Now()
		require.JSONEq(t, `{}`, string(call(t, c, "shutdown", nil)))
		require.Less(t, exitTime(t, c, from), bound)
	})
	// SIGHUP too: a terminal closing under a sidecar driven by hand is a goodbye, not a crash.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			c := open(t)
			from := time.Now()
			require.NoError(t, syscall.Kill(c.Pid(), sig))
			require.Less(t, exitTime(t, c, from), bound)
		})
	}
}
