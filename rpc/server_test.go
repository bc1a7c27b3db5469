package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/store"
)

// pipeServer runs a Server over in-memory pipes and returns the host's ends.
func pipeServer(t *testing.T, cfg Config) (send func(string), recv func() map[string]any) {
	t.Helper()
	hostToServer, serverIn := io.Pipe()
	serverOut, serverToHost := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = NewServer(cfg).Serve(context.Background(), hostToServer, serverToHost)
		serverToHost.Close()
	}()
	t.Cleanup(func() {
		serverIn.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop after its input closed")
		}
	})
	lines := bufio.NewScanner(serverOut)
	send = func(line string) {
		_, err := io.WriteString(serverIn, line+"\n")
		require.NoError(t, err)
	}
	recv = func() map[string]any { // the next answer, skipping notifications
		for {
			require.True(t, lines.Scan(), "server closed its output")
			var msg map[string]any
			require.NoError(t, json.Unmarshal(lines.Bytes(), &msg), "got %s", lines.Bytes())
			if _, isNotification := msg["method"]; !isNotification {
				return msg
			}
		}
	}
	return send, recv
}

// panickyStore panics on every call, standing in for any bug in a handler.
type panickyStore struct{}

func (panickyStore) Get(string) (engine.Snapshot, error) { panic("boom in Get") }
func (panickyStore) Begin(string, json.RawMessage, *engine.Revision) (func() (engine.Revision, error), error) {
	panic("boom in Begin")
}
func (panickyStore) Has(string) bool { return false }
func (panickyStore) Epoch() string   { return "e" }
func (panickyStore) Kind() string    { return "memory" }

func TestHandlerPanicIsAnswered32603AndServingGoesOn(t *testing.T) {
	send, recv := pipeServer(t, Config{Store: panickyStore{}})
	send(`{"jsonrpc":"2.0","id":1,"method":"state.get","params":{"topic":"t"}}`)
	msg := recv()
	require.EqualValues(t, 1, msg["id"])
	errObj := msg["error"].(map[string]any)
	require.EqualValues(t, -32603, errObj["code"])
	require.Contains(t, errObj["message"], "boom in Get")

	// A panic inside an async handler (channel.open runs the store provider) too.
	send(`{"jsonrpc":"2.0","id":2,"method":"channel.open","params":{"channel":"w","topic":"t"}}`)
	msg = recv()
	require.EqualValues(t, 2, msg["id"])
	require.EqualValues(t, -32603, msg["error"].(map[string]any)["code"], "got %v", msg)

	send(`{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"1"}}`)
	msg = recv()
	require.EqualValues(t, 3, msg["id"])
	require.NotNil(t, msg["result"])
}

func TestErrorCodesSurviveWrapping(t *testing.T) {
	wrapped := &engine.SyncError{Phase: engine.PhaseGetSnapshot, Err: errorf(CodeUnknownChannel, "gone")}
	require.ErrorIs(t, wrapped, &Error{Code: CodeUnknownChannel})
	require.NotErrorIs(t, wrapped, &Error{Code: CodeChannelExists})
	require.EqualValues(t, CodeSyncFailed, toWire(wrapped).Code)
	require.EqualValues(t, -32602, toWire(&engine.FieldError{Field: "topic", Err: io.EOF}).Code)
	require.EqualValues(t, CodeStoreWriteFailed, toWire(fmt.Errorf("set: %w", &store.WriteError{Topic: "t", Err: io.ErrShortWrite})).Code)
	require.EqualValues(t, CodeLimitReached, toWire(&store.FileTooLargeError{Topic: "t", Size: 2 << 20, Limit: 1 << 20}).Code)
	require.EqualValues(t, CodeRevisionConflict, toWire(&store.ConflictError{Topic: "t", Expected: "1", Current: "2"}).Code)
}

// gateStore holds every write's durable step until its gate opens, as a file store whose
// disk is slow would.
type gateStore struct {
	*store.Store
	began chan struct{} // one receive per write begun
	gate  chan struct{} // closed: writes complete
}

func (g gateStore) Begin(topic string, data json.RawMessage, expected *engine.Revision) (func() (engine.Revision, error), error) {
	wait, err := g.Store.Begin(topic, data, expected)
	if err != nil {
		return nil, err
	}
	g.began <- struct{}{}
	return func() (engine.Revision, error) {
		<-g.gate
		return wait()
	}, nil
}

func TestASlowStoreWriteHoldsUpNoOtherMessage(t *testing.T) {
	st := gateStore{Store: store.NewMemory(1 << 10), began: make(chan struct{}, 4), gate: make(chan struct{})}
	send, recv := pipeServer(t, Config{Store: st})
	send(`{"jsonrpc":"2.0","id":"open","method":"channel.open","params":{"channel":"w","topic":"other"}}`)
	require.Equal(t, "open", recv()["id"])
	send(`{"jsonrpc":"2.0","id":"set","method":"state.set","params":{"topic":"t","data":{"v":1}}}`)
	<-st.began
	// While the write waits for its disk: the sidecar reads and answers other requests.
	send(`{"jsonrpc":"2.0","id":"list","method":"channel.list"}`)
	answered := make(chan map[string]any, 1)
	go func() { answered <- recv() }()
	select {
	case msg := <-answered:
		require.Equal(t, "list", msg["id"], "got %v: want channel.list answered while state.set is stalled", msg)
	case <-time.After(serveBound):
		close(st.gate) // let the server stop
		t.Fatalf("channel.list not answered within %v while a state.set waits for its disk", serveBound)
	}
	send(`{"jsonrpc":"2.0","id":"set2","method":"state.set","params":{"topic":"t","data":{"v":2}}}`)
	<-st.began // decided behind the first one, in wire order
	close(st.gate)
	revisions := map[any]any{}
	for range 2 {
		msg := recv()
		result, _ := msg["result"].(map[string]any)
		require.NotNil(t, result, "got %v", msg)
		revisions[msg["id"]] = result["revision"]
	}
	require.Equal(t, map[any]any{"set": "1", "set2": "2"}, revisions)
}
