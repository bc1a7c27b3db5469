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
func (panickyStore) Set(string, json.RawMessage, *engine.Revision) (engine.Revision, error) {
	panic("boom in Set")
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
	require.EqualValues(t, CodeRevisionConflict, toWire(&store.ConflictError{Topic: "t", Expected: "1", Current: "2"}).Code)
}
