package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/engine"
)

// storePath is a store file in a fresh folder, symlinks resolved (macOS's /var is one),
// so that it is exactly the path error messages name.
func storePath(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	return filepath.Join(dir, "store.json")
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// tempFiles lists the temporary files the store made next to path.
func tempFiles(t *testing.T, path string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	require.NoError(t, err)
	return names
}

func requireMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return // no Unix permission bits
	}
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, want, info.Mode().Perm(), "mode of %s", path)
}

func TestFileIsCreated0600WithItsFormat(t *testing.T) {
	path := storePath(t)
	s := openFile(t, path, testMax)
	require.Equal(t, "file", s.Kind())
	requireMode(t, path, 0o600)
	requireMode(t, path+".lock", 0o600)
	require.Equal(t, `{"format":"statesync-store","version":1,"epoch":"`+s.Epoch()+`","topics":{`+"\n}}\n", string(readBytes(t, path)))

	mustSet(t, s, "app-config", `{"theme":"light"}`)
	mustSet(t, s, "app-config", `{"theme":"dark"}`)
	mustSet(t, s, "recent-files", `["a.txt", "b.txt"]`)
	mustSet(t, s, "app-config", `{"theme":"dark","fontSize":14}`)
	requireMode(t, path, 0o600)
	want := `{"format":"statesync-store","version":1,"epoch":"` + s.Epoch() + `","topics":{` + "\n" +
		`"app-config":{"revision":"3","data":{"theme":"dark","fontSize":14}},` + "\n" +
		`"recent-files":{"revision":"1","data":["a.txt", "b.txt"]}` + "\n}}\n"
	require.Equal(t, want, string(readBytes(t, path)))
	require.True(t, json.Valid(readBytes(t, path)))
}

func TestFileTempFilesAre0600AndNoneIsLeftBehind(t *testing.T) {
	path := storePath(t)
	var seen []string
	beforeRename = func(tmp string) {
		seen = append(seen, tmp)
		require.Equal(t, filepath.Dir(path), filepath.Dir(tmp), "the temporary file is in the store's folder, so rename is atomic")
		requireMode(t, tmp, 0o600)
		_, err := parseFile(readBytes(t, tmp))
		require.NoError(t, err, "the temporary file is complete before it replaces the store")
	}
	t.Cleanup(func() { beforeRename = nil })

	s := openFile(t, path, testMax)
	for i := range 20 {
		mustSet(t, s, fmt.Sprint("t", i%3), fmt.Sprint(i))
		require.Empty(t, tempFiles(t, path), "after write %d", i)
	}
	require.Len(t, seen, 21, "one temporary file per write, plus the creation")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"store.json", "store.json.lock"}, names)
}

func TestFileSurvivesReopen(t *testing.T) {
	path := storePath(t)
	s, err := OpenFile(path, testMax)
	require.NoError(t, err)
	epoch := s.Epoch()
	for i := 1; i <= 3; i++ {
		mustSet(t, s, "app-config", fmt.Sprintf(`{"n": %d}`, i))
	}
	mustSet(t, s, "recent", `["x"]`)
	require.NoError(t, s.Close())

	for restart := range 3 {
		s = openFile(t, path, testMax)
		require.Equal(t, epoch, s.Epoch(), "restart %d keeps the epoch: revisions go on, they do not start over", restart)
		requireSnapshot(t, s, "app-config", fmt.Sprint(3+restart), fmt.Sprintf(`{"n": %d}`, 3+restart))
		requireSnapshot(t, s, "recent", "1", `["x"]`)
		requireSnapshot(t, s, "never", "0", "")
		require.True(t, s.Has("recent"))
		r := mustSet(t, s, "app-config", fmt.Sprintf(`{"n": %d}`, 4+restart))
		require.Equal(t, engine.Revision(fmt.Sprint(4+restart)), r)
		require.NoError(t, s.Close())
	}
}

func TestFileEpochIsFreshPerNewFile(t *testing.T) {
	a := openFile(t, storePath(t), testMax)
	b := openFile(t, storePath(t), testMax)
	require.NotEqual(t, a.Epoch(), b.Epoch())
}

func TestFileThatIsNotAStoreIsAClearErrorAndLeftUntouched(t *testing.T) {
	valid := func(t *testing.T) []byte {
		path := storePath(t)
		s, err := OpenFile(path, testMax)
		require.NoError(t, err)
		mustSet(t, s, "app-config", `{"theme":"dark","fontSize":14}`)
		mustSet(t, s, "recent", `["a","b","c"]`)
		require.NoError(t, s.Close())
		return readBytes(t, path)
	}
	for _, tc := range []struct {
		name     string
		contents func(t *testing.T) []byte
		reason   string
	}{
		{"empty", func(*testing.T) []byte { return nil }, "empty"},
		{"whitespace only", func(*testing.T) []byte { return []byte(" \n\t\n") }, "empty"},
		{"zero bytes (a lost write)", func(*testing.T) []byte { return make([]byte, 512) }, "not valid JSON"},
		{"truncated", func(t *testing.T) []byte { b := valid(t); return b[:len(b)/2] }, "not valid JSON"},
		{"truncated by one byte", func(t *testing.T) []byte { b := valid(t); return b[:len(b)-2] }, "not valid JSON"},
		{"garbage", func(*testing.T) []byte { return []byte("\x00\x01binary\xff") }, "not valid JSON"},
		{"trailing garbage", func(t *testing.T) []byte { return append(valid(t), "xyz"...) }, "trailing data"},
		{"two documents", func(t *testing.T) []byte { b := valid(t); return append(b, b...) }, "trailing data"},
		{"another program's JSON", func(*testing.T) []byte { return []byte(`{"theme":"dark"}`) }, `format is ""`},
		{"wrong format", func(*testing.T) []byte {
			return []byte(`{"format":"other-store","version":1,"epoch":"e","topics":{}}`)
		}, `format is "other-store"`},
		{"a JSON array", func(*testing.T) []byte { return []byte(`[1,2]`) }, "want an object, got a JSON array"},
		{"newer version", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":2,"epoch":"e","topics":{}}`)
		}, "version 2"},
		{"version as a string", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":"1","epoch":"e","topics":{}}`)
		}, "version: want a number, got a JSON string"},
		{"no epoch", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"topics":{}}`)
		}, "epoch is missing"},
		{"bad revision", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{"t":{"revision":"007","data":1}}}`)
		}, `topic "t"`},
		{"numeric revision", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{"t":{"revision":7,"data":1}}}`)
		}, "topics.t.revision: want a string, got a JSON number"},
		{"revision 0", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{"t":{"revision":"0","data":1}}}`)
		}, "revision 0"},
		{"no data", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{"t":{"revision":"3"}}}`)
		}, "no data"},
		// One reading only: what encoding/json would read one way and another reader
		// another, or what the next write would drop, is damage too.
		{"FORMAT in capitals", func(*testing.T) []byte {
			return []byte(`{"FORMAT":"statesync-store","version":1,"epoch":"e","topics":{}}`)
		}, `FORMAT: unknown member, differs only in case from "format"`},
		{"Version capitalised, next to version", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"Version":2,"epoch":"e","topics":{}}`)
		}, `Version: unknown member, differs only in case from "version"`},
		{"epoch twice", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","epoch":"f","topics":{}}`)
		}, "epoch: the member appears twice"},
		{"a topic twice (one copy would be lost at the next write)", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{` + "\n" +
				`"t":{"revision":"3","data":1},` + "\n" + `"t":{"revision":"4","data":2}}}`)
		}, "topics.t: the member appears twice"},
		{"a topic's member capitalised", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{"t":{"revision":"3","Data":1}}}`)
		}, `topics.t.Data: unknown member, differs only in case from "data"`},
		{"an unknown member (the next write would drop it)", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{},"comment":"mine"}`)
		}, "comment: unknown member (known: format, version, epoch, topics)"},
		{"an empty topic name", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{"":{"revision":"1","data":1}}}`)
		}, `topic "": the name is empty`},
		{"topics null", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":null}`)
		}, `"topics" is missing or null`},
		{"no topics", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e"}`)
		}, `"topics" is missing or null`},
		{"invalid UTF-8 in data", func(*testing.T) []byte {
			return []byte("{\"format\":\"statesync-store\",\"version\":1,\"epoch\":\"e\",\"topics\":{\"t\":{\"revision\":\"1\",\"data\":{\"k\":\"\xc3(\xff\"}}}}")
		}, "topics.t.data.k: byte 95 is not valid UTF-8"},
		{"invalid UTF-8 in a topic name", func(*testing.T) []byte {
			return []byte("{\"format\":\"statesync-store\",\"version\":1,\"epoch\":\"e\",\"topics\":{\"t\xff\":{\"revision\":\"1\",\"data\":1}}}")
		}, "topics: a member name has byte 64, which is not valid UTF-8"},
		// A name refused for its length is quoted in part: the whole would be 100 KiB of stderr.
		{"a topic name over the limit", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{"` + strings.Repeat("n", 100<<10) + `":{"revision":"1","data":1}}}`)
		}, `topic "` + strings.Repeat("n", 64) + `"… (102400 bytes): the name is 102400 bytes long, over`},
		{"a lone surrogate in a topic name (read as U+FFFD)", func(*testing.T) []byte {
			return []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{"t\ud800":{"revision":"1","data":1}}}`)
		}, "topics: a member name has a lone surrogate escape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := storePath(t)
			before := tc.contents(t)
			require.NoError(t, os.WriteFile(path, before, 0o640))
			_, err := OpenFile(path, testMax)
			require.Error(t, err)
			msg := err.Error()
			require.Contains(t, msg, path, "the error names the file")
			require.Contains(t, msg, tc.reason)
			require.Contains(t, msg, "left untouched; move it away to start empty, or restore a backup")
			require.Less(t, len(msg), 1024+len(path), "the error is a line, not the file")
			require.True(t, bytes.Equal(before, readBytes(t, path)), "the file is byte-identical")
			requireMode(t, path, 0o640)
			require.Empty(t, tempFiles(t, path))
		})
	}
}

func TestFileInAFolderThatTakesNoFilesFailsAtOpen(t *testing.T) {
	t.Run("missing folder", func(t *testing.T) {
		path := filepath.Join(filepath.Dir(storePath(t)), "no", "such", "folder", "store.json")
		_, err := OpenFile(path, testMax)
		require.ErrorContains(t, err, path)
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("folder is a file", func(t *testing.T) {
		notDir := storePath(t)
		require.NoError(t, os.WriteFile(notDir, []byte("x"), 0o600))
		path := filepath.Join(notDir, "store.json")
		_, err := OpenFile(path, testMax)
		require.ErrorContains(t, err, path)
	})
	t.Run("read-only folder, new store", func(t *testing.T) {
		path := storePath(t)
		makeReadOnly(t, filepath.Dir(path))
		_, err := OpenFile(path, testMax)
		require.ErrorContains(t, err, path)
		_, statErr := os.Stat(path)
		require.ErrorIs(t, statErr, os.ErrNotExist)
	})
	t.Run("read-only folder, existing store", func(t *testing.T) {
		path := storePath(t)
		s, err := OpenFile(path, testMax)
		require.NoError(t, err)
		mustSet(t, s, "t", `1`)
		require.NoError(t, s.Close()) // the lock file stays, so opening it needs no new file
		before := readBytes(t, path)
		makeReadOnly(t, filepath.Dir(path))
		_, err = OpenFile(path, testMax)
		require.ErrorContains(t, err, path)
		require.ErrorContains(t, err, "the folder does not take new files, so no write could be saved")
		require.Equal(t, before, readBytes(t, path))
	})
}

// makeReadOnly makes dir refuse new files until the test ends. chmod does not stop root,
// so as root it sets the immutable attribute instead (chattr +i, which needs
// CAP_LINUX_IMMUTABLE and a file system that has it); failing both, it skips the test.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no read-only folders for its owner")
	}
	if os.Geteuid() != 0 {
		require.NoError(t, os.Chmod(dir, 0o500))
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	} else {
		out, err := exec.Command("chattr", "+i", dir).CombinedOutput()
		if err != nil {
			t.Skipf("running as root, where chmod does not stop writes, and chattr +i failed (%v: %s): no honest way to make %s read-only here", err, out, dir)
		}
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
	}
	probe := filepath.Join(dir, "probe")
	if f, err := os.Create(probe); err == nil {
		_ = f.Close()
		_ = os.Remove(probe)
		t.Skipf("%s still takes new files after being made read-only", dir)
	}
}

// setReadOnly makes dir writable again before the test ends.
func setWritable(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		require.NoError(t, os.Chmod(dir, 0o700))
	} else {
		require.NoError(t, exec.Command("chattr", "-i", dir).Run())
	}
}

// requireFailedWriteChangedNothing: the write failed with an error naming the file, and
// neither the file nor the store moved.
func requireFailedWriteChangedNothing(t *testing.T, s *Store, path string, before []byte, err error) {
	t.Helper()
	require.Error(t, err)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, "the previous file is intact")
	require.Equal(t, before, readBytes(t, path), "the old file is byte-identical")
	requireSnapshot(t, s, "t", "2", `"two"`)
	requireSnapshot(t, s, "other", "0", "")
	require.False(t, s.Has("other"))
	require.Empty(t, tempFiles(t, path))
}

func TestFailedWriteKeepsTheOldFileAndTheStore(t *testing.T) {
	setup := func(t *testing.T, path string) (*Store, []byte) {
		s := openFile(t, path, testMax)
		mustSet(t, s, "t", `"one"`)
		mustSet(t, s, "t", `"two"`)
		return s, readBytes(t, path)
	}
	t.Run("read-only folder", func(t *testing.T) {
		path := storePath(t)
		s, before := setup(t, path)
		makeReadOnly(t, filepath.Dir(path))
		_, err := s.Set("t", json.RawMessage(`"three"`), nil)
		requireFailedWriteChangedNothing(t, s, path, before, err)
		_, err = s.Set("other", json.RawMessage(`1`), rev("0"))
		requireFailedWriteChangedNothing(t, s, path, before, err)

		setWritable(t, filepath.Dir(path))
		require.Equal(t, engine.Revision("3"), mustSet(t, s, "t", `"three"`), "the failed writes took no revision")
	})
	t.Run("folder replaced", func(t *testing.T) {
		// The store's folder is moved away and a file takes its place (root-proof).
		parent := filepath.Dir(storePath(t))
		dir := filepath.Join(parent, "app")
		require.NoError(t, os.Mkdir(dir, 0o700))
		path := filepath.Join(dir, "store.json")
		s, before := setup(t, path)
		moved := filepath.Join(parent, "app.moved")
		require.NoError(t, os.Rename(dir, moved))
		require.NoError(t, os.WriteFile(dir, []byte("not a folder"), 0o600))

		_, err := s.Set("t", json.RawMessage(`"three"`), nil)
		require.ErrorContains(t, err, path)
		require.ErrorContains(t, err, "the previous file is intact")
		require.NoError(t, os.Remove(dir))
		require.NoError(t, os.Rename(moved, dir))
		requireFailedWriteChangedNothing(t, s, path, before, err)
		require.Equal(t, engine.Revision("3"), mustSet(t, s, "t", `"three"`))
	})
	t.Run("file size limit", func(t *testing.T) {
		// A full disk, as RLIMIT_FSIZE makes it (it binds root too): the temporary file
		// is created, then the write fails half-way. The limit is set in a child process.
		if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
			t.Skip("RLIMIT_FSIZE is a Unix limit")
		}
		path := storePath(t)
		s, before := setup(t, path)
		require.NoError(t, s.Close()) // the child takes the lock
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileSizeLimitChild$", "-test.v")
		cmd.Env = append(os.Environ(), "STORE_FSIZE_CHILD="+path)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "CHILD-OK", "%s", out)
		require.Equal(t, before, readBytes(t, path))
		require.Empty(t, tempFiles(t, path))
		s = openFile(t, path, testMax)
		requireSnapshot(t, s, "t", "2", `"two"`)
		require.Equal(t, engine.Revision("3"), mustSet(t, s, "t", `"three"`))
	})
}

func TestFileLockKeepsASecondProcessOut(t *testing.T) {
	saved := lockWait
	lockWait = 50 * time.Millisecond
	t.Cleanup(func() { lockWait = saved })

	path := storePath(t)
	a, err := OpenFile(path, testMax)
	require.NoError(t, err)
	mustSet(t, a, "t", `"a"`)

	_, err = OpenFile(path, testMax)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, "in use by another process")
	if runtime.GOOS != "windows" {
		link := filepath.Join(filepath.Dir(path), "link.json")
		require.NoError(t, os.Symlink(path, link))
		_, err = OpenFile(link, testMax)
		require.ErrorContains(t, err, "in use by another process", "a symlink to the store is the same store")
	}
	mustSet(t, a, "t", `"a2"`)
	require.NoError(t, a.Close())

	b := openFile(t, path, testMax)
	requireSnapshot(t, b, "t", "2", `"a2"`)
}

func TestFileOpenRemovesTemporaryFilesOfACrashedWriter(t *testing.T) {
	path := storePath(t)
	s, err := OpenFile(path, testMax)
	require.NoError(t, err)
	mustSet(t, s, "t", `1`)
	require.NoError(t, s.Close())
	before := readBytes(t, path)
	stale := filepath.Join(filepath.Dir(path), ".store.json.tmp-123456")
	require.NoError(t, os.WriteFile(stale, before[:10], 0o600))
	other := filepath.Join(filepath.Dir(path), ".other.json.tmp-1")
	require.NoError(t, os.WriteFile(other, nil, 0o600))

	openFile(t, path, testMax)
	require.Empty(t, tempFiles(t, path))
	require.FileExists(t, other, "another store's files are not ours")
	require.Equal(t, before, readBytes(t, path))
}

func TestFileSymlinkStaysASymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	target := storePath(t)
	link := filepath.Join(filepath.Dir(storePath(t)), "link.json")
	require.NoError(t, os.Symlink(target, link))
	s := openFile(t, link, testMax)
	mustSet(t, s, "t", `"via link"`)
	info, err := os.Lstat(link)
	require.NoError(t, err)
	require.Equal(t, os.ModeSymlink, info.Mode().Type(), "the write went through the link, not over it")
	require.True(t, strings.Contains(string(readBytes(t, target)), `"via link"`))
}

func TestFileCloseTwiceIsHarmless(t *testing.T) {
	s, err := OpenFile(storePath(t), testMax)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
}

func TestFileKeepsDataByteForByte(t *testing.T) {
	path := storePath(t)
	s, err := OpenFile(path, testMax)
	require.NoError(t, err)
	datas := map[string]string{
		"spaced":  `{"b":1, "a":[1,2]}`,
		"nested":  "{ \"z\" : [ 1 , 2.50 , 1e3 ] ,\n\t\"a\" : \"\\u00e9<&>\" }",
		"unicode": `"héllo 😀"`,
		"null":    `null`,
	}
	for topic, d := range datas {
		mustSet(t, s, topic, d)
	}
	file := string(readBytes(t, path))
	for topic, d := range datas {
		require.Contains(t, file, `"data":`+d+`}`, "%s is stored as sent", topic)
	}
	require.NoError(t, s.Close())
	s = openFile(t, path, testMax)
	for topic, d := range datas {
		requireSnapshot(t, s, topic, "1", d)
	}
}
