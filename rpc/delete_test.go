package rpc

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/store"
)

// getSetStore is a Store with no BeginDelete: a backend that has not implemented deletion.
type getSetStore struct{ Store }

// A store without deletion answers state.delete with an error naming the store and what to
// do instead, and keeps serving; the memory store deletes.
func TestStateDeleteNeedsAStoreThatDeletes(t *testing.T) {
	send, recv := pipeServer(t, Config{Store: getSetStore{store.NewMemory(1 << 10)}})
	send(`{"jsonrpc":"2.0","id":1,"method":"state.delete","params":{"topic":"t"}}`)
	msg := recv()
	errObj, _ := msg["error"].(map[string]any)
	require.EqualValues(t, -32601, errObj["code"], "got %v", msg)
	require.Contains(t, errObj["message"], "state.delete is not supported by the memory store")

	send, recv = pipeServer(t, Config{Store: store.NewMemory(1 << 10)})
	send(`{"jsonrpc":"2.0","id":1,"method":"state.set","params":{"topic":"t","data":1}}`)
	require.Equal(t, map[string]any{"topic": "t", "revision": "1"}, recv()["result"])
	send(`{"jsonrpc":"2.0","id":2,"method":"state.delete","params":{"topic":"t"}}`)
	require.Equal(t, map[string]any{"topic": "t", "revision": "2"}, recv()["result"])
	send(`{"jsonrpc":"2.0","id":3,"method":"state.get","params":{"topic":"t"}}`)
	require.Subset(t, recv()["result"], map[string]any{"revision": "2", "deleted": true})
}
