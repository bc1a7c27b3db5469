package store

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/engine"
)

const testMax = 1 << 20

// backends runs a test against the memory store and a fresh file store.
func backends(t *testing.T, test func(t *testing.T, s *Store)) {
	t.Run("memory", func(t *testing.T) { test(t, NewMemory(testMax)) })
	t.Run("file", func(t *testing.T) { test(t, openFile(t, filepath.Join(t.TempDir(), "store.json"), testMax)) })
}

// openFile opens a file store that is closed at the end of the test.
func openFile(t *testing.T, path string, maxBytes int) *Store {
	t.Helper()
	s, err := OpenFile(path, maxBytes)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func rev(s string) *engine.Revision {
	r := engine.Revision(s)
	return &r
}

func mustSet(t *testing.T, s *Store, topic, data string) engine.Revision {
	t.Helper()
	r, err := s.Set(topic, json.RawMessage(data), nil)
	require.NoError(t, err)
	return r
}

func requireSnapshot(t *testing.T, s *Store, topic, revision, data string) {
	t.Helper()
	got, err := s.Get(topic)
	require.NoError(t, err)
	require.Equal(t, engine.Revision(revision), got.Revision, "revision of %q", topic)
	if data == "" {
		require.Empty(t, got.Data, "data of %q", topic)
	} else {
		require.Equal(t, data, string(got.Data), "data of %q", topic)
	}
	require.Equal(t, s.Epoch(), got.Epoch)
}

func TestSetBumpsRevisionByOnePerWrite(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		for i := 1; i <= 12; i++ {
			r := mustSet(t, s, "app-config", fmt.Sprintf(`{"n":%d}`, i))
			require.Equal(t, engine.Revision(fmt.Sprint(i)), r)
			requireSnapshot(t, s, "app-config", fmt.Sprint(i), fmt.Sprintf(`{"n":%d}`, i))
		}
		// Topics count on their own.
		require.Equal(t, engine.Revision("1"), mustSet(t, s, "other", `1`))
		requireSnapshot(t, s, "app-config", "12", `{"n":12}`)
		// Last writer wins: the same data is still a write.
		require.Equal(t, engine.Revision("2"), mustSet(t, s, "other", `1`))
		require.True(t, s.Has("other"))
	})
}

func TestGetOfAnUnsetTopicIsAnEmptySnapshot(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		got, err := s.Get("never-set")
		require.NoError(t, err)
		require.Equal(t, engine.ZeroRevision, got.Revision)
		require.Nil(t, got.Data)
		require.True(t, got.Empty(), "the engine applies nothing for it")
		require.Equal(t, s.Epoch(), got.Epoch)
		require.False(t, s.Has("never-set"))
	})
}

func TestCompareAndSet(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		// "0" on an unset topic: create if absent.
		r, err := s.Set("doc", json.RawMessage(`"a"`), rev("0"))
		require.NoError(t, err)
		require.Equal(t, engine.Revision("1"), r)

		// A second create-if-absent loses.
		_, err = s.Set("doc", json.RawMessage(`"b"`), rev("0"))
		var conflict *ConflictError
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, engine.Revision("1"), conflict.Current)
		require.Equal(t, engine.Revision("0"), conflict.Expected)
		require.Equal(t, "doc", conflict.Topic)
		require.Contains(t, err.Error(), "read it again (state.get), then retry the write")
		requireSnapshot(t, s, "doc", "1", `"a"`)

		// Match.
		r, err = s.Set("doc", json.RawMessage(`"c"`), rev("1"))
		require.NoError(t, err)
		require.Equal(t, engine.Revision("2"), r)

		// Mismatch, older and newer: nothing changes.
		for _, stale := range []string{"1", "3", "10"} {
			_, err = s.Set("doc", json.RawMessage(`"lost"`), rev(stale))
			require.ErrorAs(t, err, &conflict, "expected %s", stale)
			require.Equal(t, engine.Revision("2"), conflict.Current)
			require.Equal(t, engine.Revision(stale), conflict.Expected)
		}
		requireSnapshot(t, s, "doc", "2", `"c"`)

		// An expected revision on a topic never set is a conflict at "0".
		_, err = s.Set("absent", json.RawMessage(`1`), rev("4"))
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, engine.ZeroRevision, conflict.Current)
		require.False(t, s.Has("absent"))
	})
}

func TestCompareAndSetLetsExactlyOneConcurrentWriterWin(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		mustSet(t, s, "doc", `0`)
		const writers = 8
		var wg sync.WaitGroup
		wins := make(chan int, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Set("doc", json.RawMessage(fmt.Sprint(i)), rev("1")); err == nil {
					wins <- i
				}
			}()
		}
		wg.Wait()
		close(wins)
		require.Len(t, wins, 1)
		winner := <-wins
		requireSnapshot(t, s, "doc", "2", fmt.Sprint(winner))
	})
}

func TestConcurrentWritesGetDistinctRevisions(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		const writers, each = 4, 10
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			seen = map[engine.Revision]string{}
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					data := fmt.Sprintf(`"w%d-%d"`, w, i)
					r, err := s.Set("doc", json.RawMessage(data), nil)
					if !check(t, err == nil, "set: %v", err) {
						return
					}
					mu.Lock()
					_, dup := seen[r]
					seen[r] = data
					mu.Unlock()
					check(t, !dup, "revision %s acknowledged twice", r)
				}
				_, _ = s.Get("doc") // reads race with writes
			}()
		}
		wg.Wait()
		require.Len(t, seen, writers*each)
		last := engine.Revision(fmt.Sprint(writers * each))
		requireSnapshot(t, s, "doc", string(last), seen[last])
	})
}

// check reports a failure from any goroutine (require must not be called off the test
// goroutine).
func check(t *testing.T, ok bool, format string, args ...any) bool {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
	return ok
}

func TestSizeLimit(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testSizeLimit(t, NewMemory(10)) })
	t.Run("file", func(t *testing.T) { testSizeLimit(t, openFile(t, filepath.Join(t.TempDir(), "s.json"), 10)) })
}

func testSizeLimit(t *testing.T, s *Store) {
	require.Equal(t, engine.Revision("1"), mustSet(t, s, "t", `"12345678"`)) // exactly 10 bytes
	_, err := s.Set("t", json.RawMessage(`"123456789"`), nil)
	var tooLarge *TooLargeError
	require.ErrorAs(t, err, &tooLarge)
	require.Equal(t, 11, tooLarge.Size)
	require.Equal(t, 10, tooLarge.Limit)
	require.Equal(t, "t", tooLarge.Topic)
	require.Contains(t, err.Error(), "--max-store-bytes")
	requireSnapshot(t, s, "t", "1", `"12345678"`)
	// The limit wins over a matching compare-and-set, and still nothing changes.
	_, err = s.Set("t", json.RawMessage(`"123456789"`), rev("1"))
	require.ErrorAs(t, err, &tooLarge)
	requireSnapshot(t, s, "t", "1", `"12345678"`)
}

func TestSetRejectsBytesThatAreNotJSON(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		bad := []string{``}
		if s.Kind() == "file" { // a file holding them could not be opened again
			bad = append(bad, `{`, `{"a":1}}`, `nul`, `1 2`, "\"\x00\"")
		}
		for _, b := range bad {
			_, err := s.Set("t", json.RawMessage(b), nil)
			var fieldErr *engine.FieldError
			require.ErrorAs(t, err, &fieldErr, "%q", b)
			require.Equal(t, "data", fieldErr.Field)
		}
		require.False(t, s.Has("t"))
		// null is a value like any other.
		require.Equal(t, engine.Revision("1"), mustSet(t, s, "t", `null`))
		requireSnapshot(t, s, "t", "1", `null`)
	})
}

func TestDataIsKeptByteForByte(t *testing.T) {
	datas := []string{
		`{"b":1, "a":[1,2]}`,
		`{ "z" : { "y" : [ 1 , 2.50 , 1e3 , -0 ] } , "a" : "\u00e9\n<&>" }`,
		`"héllo \ud83d\ude00"`,
		`[]`, `0`, `true`, `null`,
		`{"dup":1,"dup":2}`,
	}
	backends(t, func(t *testing.T, s *Store) {
		for i, d := range datas {
			mustSet(t, s, fmt.Sprint("t", i), d)
		}
		for i, d := range datas {
			requireSnapshot(t, s, fmt.Sprint("t", i), "1", d)
		}
		// The caller's buffer is copied: changing it later changes nothing.
		buf := []byte(`{"k":"v"}`)
		mustSet(t, s, "copy", string(buf))
		_, err := s.Set("copy2", buf, nil)
		require.NoError(t, err)
		copy(buf, `{"k":"X"}`)
		requireSnapshot(t, s, "copy2", "1", `{"k":"v"}`)
	})
}

func TestMemoryEpochIsFreshPerStore(t *testing.T) {
	a, b := NewMemory(testMax), NewMemory(testMax)
	require.NotEmpty(t, a.Epoch())
	require.NotEqual(t, a.Epoch(), b.Epoch())
	mustSet(t, a, "t", `1`)
	got, err := a.Get("t")
	require.NoError(t, err)
	require.Equal(t, a.Epoch(), got.Epoch, "snapshots carry the epoch")
	require.Equal(t, "memory", a.Kind())
	require.NoError(t, a.Close())
}
