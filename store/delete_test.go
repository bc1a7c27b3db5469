package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/engine"
)

func requireDeleted(t *testing.T, s *Store, topic, revision string) {
	t.Helper()
	got, err := s.Get(topic)
	require.NoError(t, err)
	require.Equal(t, engine.Revision(revision), got.Revision, "revision of deleted %q", topic)
	require.True(t, got.Deleted, "Get(%q): got Deleted=false, want the tombstone", topic)
	require.Empty(t, got.Data)
	require.False(t, s.Has(topic), "Has(%q): a deleted topic holds no data", topic)
}

// A delete is the next revision, and the next write goes on from it: windows that saw the
// revisions before the delete must take the writes after it as newer.
func TestDeleteIsTheNextRevisionAndWritesGoOnFromIt(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		mustSet(t, s, "doc", `{"a":1}`)
		mustSet(t, s, "doc", `{"a":2}`)
		r, err := s.Delete("doc", nil)
		require.NoError(t, err)
		require.Equal(t, engine.Revision("3"), r)
		requireDeleted(t, s, "doc", "3")
		require.Equal(t, engine.Revision("4"), mustSet(t, s, "doc", `{"a":4}`))
		requireSnapshot(t, s, "doc", "4", `{"a":4}`)
		require.True(t, s.Has("doc"))
	})
}

func TestDeleteOfATopicWithNoDataWritesNothing(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		r, err := s.Delete("never", nil)
		require.NoError(t, err)
		require.Equal(t, engine.ZeroRevision, r)
		requireSnapshot(t, s, "never", "0", "")
		mustSet(t, s, "doc", `1`)
		_, err = s.Delete("doc", nil)
		require.NoError(t, err)
		r, err = s.Delete("doc", nil)
		require.NoError(t, err)
		require.Equal(t, engine.Revision("2"), r, "a second delete: no new revision")
		requireDeleted(t, s, "doc", "2")
	})
}

func TestDeleteCompareAndSet(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		mustSet(t, s, "doc", `1`)
		mustSet(t, s, "doc", `2`)
		_, err := s.Delete("doc", rev("1"))
		var conflict *ConflictError
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, engine.Revision("2"), conflict.Current)
		requireSnapshot(t, s, "doc", "2", `2`)

		r, err := s.Delete("doc", rev("2"))
		require.NoError(t, err)
		require.Equal(t, engine.Revision("3"), r)
		// A write that expects the topic unset must name the tombstone's revision.
		_, err = s.Set("doc", json.RawMessage(`"back"`), rev("0"))
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, engine.Revision("3"), conflict.Current)
		_, err = s.Delete("doc", rev("0"))
		require.ErrorAs(t, err, &conflict, "a compare-and-set on a deleted topic still compares")
	})
}

// The tombstone is written like any write (temp file, fsync, rename) and survives a
// reopen; a store file holding one reads back, and one with a deleted topic that holds
// data is damage.
func TestDeleteSurvivesAReopenAndIsCheckedAtLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.json")
	s, err := OpenFile(path, testMax)
	require.NoError(t, err)
	mustSet(t, s, "doc", `{"a":1}`)
	mustSet(t, s, "kept", `"k"`)
	_, err = s.Delete("doc", nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.Contains(t, string(readBytes(t, path)), `"doc":{"revision":"2","deleted":true}`)

	reopened := openFile(t, path, testMax)
	requireDeleted(t, reopened, "doc", "2")
	requireSnapshot(t, reopened, "kept", "1", `"k"`)
	require.Equal(t, engine.Revision("3"), mustSet(t, reopened, "doc", `"again"`))
	require.NoError(t, reopened.Close())

	damaged := strings.Replace(string(readBytes(t, path)), `"data":"again"`, `"data":"again","deleted":true`, 1)
	require.NoError(t, os.WriteFile(path, []byte(damaged), 0o600))
	_, err = OpenFile(path, testMax)
	require.ErrorContains(t, err, `topic "doc" is deleted and has data`)
}

// A delete shares the group commit: begun behind a write in flight, it is durable with
// the batch after it, and Get reads it once it is.
func TestDeleteRidesTheGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.json")
	s := openFile(t, path, testMax)
	mustSet(t, s, "doc", `"zero"`)
	stalled, release, renames := stallFirstRename(t, nil)
	firstDone := make(chan error, 1)
	go func() {
		_, err := s.Set("other", json.RawMessage(`1`), nil)
		firstDone <- err
	}()
	<-stalled
	wait, err := s.BeginDelete("doc", rev("1"))
	require.NoError(t, err)
	again, err := s.BeginDelete("doc", nil) // deleted already: answers with the tombstone, once durable
	require.NoError(t, err)
	close(release)
	require.NoError(t, <-firstDone)
	r, err := wait()
	require.NoError(t, err)
	require.Equal(t, engine.Revision("2"), r)
	r, err = again()
	require.NoError(t, err)
	require.Equal(t, engine.Revision("2"), r)
	require.Equal(t, 2, renames())
	requireDeleted(t, s, "doc", "2")
}
