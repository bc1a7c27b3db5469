package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/engine"
)

// stallFirstRename makes the first commit stop before its rename until release is
// closed, and reports when it got there; then it runs first on the temporary file.
// It counts every rename.
func stallFirstRename(t *testing.T, first func(tmp string)) (stalled <-chan struct{}, release chan struct{}, renames func() int) {
	t.Helper()
	var (
		mu    sync.Mutex
		count int
	)
	at, rel := make(chan struct{}), make(chan struct{})
	beforeRename = func(tmp string) {
		mu.Lock()
		count++
		n := count
		mu.Unlock()
		if n == 1 {
			close(at)
			<-rel
			if first != nil {
				first(tmp)
			}
		}
	}
	t.Cleanup(func() { beforeRename = nil })
	return at, rel, func() int { mu.Lock(); defer mu.Unlock(); return count }
}

// Writes that arrive while the file is being written share the next rewrite and fsync,
// each still gets its own revision in call order, and all of them survive a reopen.
func TestConcurrentWritesShareOneCommitAndSurviveAReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.json")
	s, err := OpenFile(path, testMax)
	require.NoError(t, err)
	stalled, release, renames := stallFirstRename(t, nil)

	firstDone := make(chan error, 1)
	go func() {
		_, err := s.Set("doc", json.RawMessage(`"first"`), nil)
		firstDone <- err
	}()
	<-stalled // the first commit is between its fsync and its rename

	const writers = 8
	waits := make([]func() (engine.Revision, error), 0, 2*writers)
	for i := range writers {
		for _, topic := range []string{"doc", fmt.Sprint("t", i)} {
			wait, err := s.Begin(topic, json.RawMessage(fmt.Sprintf(`"w%d"`, i)), nil)
			require.NoError(t, err)
			waits = append(waits, wait)
		}
	}
	revs := make([]engine.Revision, len(waits))
	errs := make([]error, len(waits))
	var wg sync.WaitGroup
	for i, wait := range waits {
		wg.Go(func() { revs[i], errs[i] = wait() })
	}
	close(release)
	require.NoError(t, <-firstDone)
	wg.Wait()

	for i := range writers {
		require.NoError(t, errs[2*i])
		require.NoError(t, errs[2*i+1])
		require.Equal(t, engine.Revision(fmt.Sprint(i+2)), revs[2*i], "doc write %d: revisions follow call order", i)
		require.Equal(t, engine.Revision("1"), revs[2*i+1], "t%d", i)
	}
	require.Equal(t, 2, renames(), "want one commit for the first write and one for the %d writes queued behind it", 2*writers)
	requireSnapshot(t, s, "doc", fmt.Sprint(writers+1), fmt.Sprintf(`"w%d"`, writers-1))

	require.NoError(t, s.Close())
	reopened := openFile(t, path, testMax)
	requireSnapshot(t, reopened, "doc", fmt.Sprint(writers+1), fmt.Sprintf(`"w%d"`, writers-1))
	for i := range writers {
		requireSnapshot(t, reopened, fmt.Sprint("t", i), "1", fmt.Sprintf(`"w%d"`, i))
	}
}

// A compare-and-set decided on top of a write that then fails is not kept either: it
// fails with it, and the store is as before both.
func TestAFailedCommitTakesTheWritesBegunOnItWithIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.json")
	s := openFile(t, path, testMax)
	mustSet(t, s, "doc", `"zero"`)
	before := readBytes(t, path)
	stalled, release, _ := stallFirstRename(t, func(tmp string) {
		if err := os.Remove(tmp); err != nil { // the rename that follows fails
			t.Errorf("removing %s: %v", tmp, err)
		}
	})

	firstDone := make(chan error, 1)
	go func() {
		_, err := s.Set("doc", json.RawMessage(`"lost"`), nil)
		firstDone <- err
	}()
	<-stalled
	onTop, err := s.Begin("doc", json.RawMessage(`"on top"`), rev("2"))
	require.NoError(t, err, "the compare-and-set counts on the write in flight")
	close(release)

	var writeErr *WriteError
	require.ErrorAs(t, <-firstDone, &writeErr)
	_, err = onTop()
	require.ErrorAs(t, err, &writeErr)
	requireSnapshot(t, s, "doc", "1", `"zero"`)
	require.Equal(t, string(before), string(readBytes(t, path)))

	require.Equal(t, engine.Revision("2"), mustSet(t, s, "doc", `"again"`))
}

// Get reads the writes begun before it: it waits for them to be durable rather than
// answer with the state before them (a state.get sent after a state.set sees it).
func TestGetWaitsForTheWritesBegunBeforeIt(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "store.json"), testMax)
	stalled, release, _ := stallFirstRename(t, nil)
	wait, err := s.Begin("doc", json.RawMessage(`"new"`), nil)
	require.NoError(t, err)
	committed := make(chan error, 1)
	go func() { _, err := wait(); committed <- err }()
	<-stalled
	got := make(chan engine.Snapshot, 1)
	go func() {
		snap, err := s.Get("doc")
		if err != nil {
			t.Errorf("get: %v", err)
		}
		got <- snap
	}()
	close(release)
	require.NoError(t, <-committed)
	snap := <-got
	require.Equal(t, engine.Revision("1"), snap.Revision, "Get answered with the state before a write begun before it")
	require.Equal(t, `"new"`, string(snap.Data))
}
