package store

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/engine"
)

// An update reads the latest write, durable or not, as a compare-and-set does: no write
// can come between what it read and what it writes.
func TestUpdateReadsTheLatestWriteNotYetDurable(t *testing.T) {
	s, err := OpenFile(filepath.Join(t.TempDir(), "s.json"), 1<<10)
	require.NoError(t, err)
	defer s.Close()
	waitSet, err := s.Begin("t", json.RawMessage(`{"n":1}`), nil)
	require.NoError(t, err)
	var seen engine.Snapshot
	waitUpdate, err := s.BeginUpdate("t", nil, func(current engine.Snapshot) (json.RawMessage, error) {
		seen = current
		return json.RawMessage(`{"n":2}`), nil
	})
	require.NoError(t, err)
	require.EqualValues(t, "1", seen.Revision)
	require.JSONEq(t, `{"n":1}`, string(seen.Data))
	_, err = waitSet()
	require.NoError(t, err)
	rev, err := waitUpdate()
	require.NoError(t, err)
	require.EqualValues(t, "2", rev)
	got, err := s.Get("t")
	require.NoError(t, err)
	require.JSONEq(t, `{"n":2}`, string(got.Data))
}

var errBoom = errors.New("boom")

// An update that fails, or loses its compare-and-set, writes nothing.
func TestUpdateThatFailsWritesNothing(t *testing.T) {
	s := NewMemory(1 << 10)
	_, err := s.Set("t", json.RawMessage(`1`), nil)
	require.NoError(t, err)
	stale := engine.Revision("0")
	_, err = s.Update("t", &stale, func(engine.Snapshot) (json.RawMessage, error) { return json.RawMessage(`2`), nil })
	var conflict *ConflictError
	require.ErrorAs(t, err, &conflict)
	require.EqualValues(t, "1", conflict.Current)
	_, err = s.Update("t", nil, func(engine.Snapshot) (json.RawMessage, error) { return nil, errBoom })
	require.ErrorIs(t, err, errBoom)
	got, err := s.Get("t")
	require.NoError(t, err)
	require.EqualValues(t, "1", got.Revision)
}
