package store

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// requireRefusedUnread checks the error of an OpenFile that must be refused, and that
// nothing was created next to path: no lock file, no temporary file.
func requireRefusedUnread(t *testing.T, path string, err error, reason string) {
	t.Helper()
	require.Error(t, err, "OpenFile(%s) succeeded", path)
	require.Contains(t, err.Error(), path, "the error names the file")
	require.Contains(t, err.Error(), reason)
	require.NoFileExists(t, path+".lock")
	require.Empty(t, tempFiles(t, path))
}

func TestFileThatIsAFolderIsRefused(t *testing.T) {
	path := storePath(t)
	require.NoError(t, os.Mkdir(path, 0o700))
	_, err := OpenFile(path, testMax)
	requireRefusedUnread(t, path, err, "is a folder, not a regular file: give --store-file the path of a store file")
}

func TestFileThatIsADeviceIsRefusedUnread(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no /dev/zero")
	}
	// /dev/zero never ends: read whole, it would take all memory.
	_, err := OpenFile("/dev/zero", testMax)
	require.Error(t, err)
	require.Contains(t, err.Error(), "/dev/zero is a device, not a regular file")
	require.NoFileExists(t, "/dev/zero.lock", "no lock file was made next to the device")
}

// A file over the limit is refused from its size, before a byte of it is read: a sparse
// file of gigabytes costs nothing.
func TestFileOverTheSizeLimitIsRefusedUnread(t *testing.T) {
	const maxBytes = 64 << 10 // the limit is then 16 × 64 KiB = 1 MiB
	require.Equal(t, int64(1<<20), fileLimit(maxBytes))

	t.Run("sparse", func(t *testing.T) {
		path := storePath(t)
		f, err := os.Create(path)
		require.NoError(t, err)
		require.NoError(t, f.Truncate(64<<20))
		require.NoError(t, f.Close())
		_, err = OpenFile(path, maxBytes)
		require.Error(t, err)
		require.Contains(t, err.Error(), fmt.Sprintf("store file %s is %d bytes or more, over the limit of 1048576 bytes (16 × --max-store-bytes, at least 1 MiB)", path, 64<<20))
		require.Contains(t, err.Error(), "start with --max-store-bytes 4194304 or more")
		info, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, int64(64<<20), info.Size(), "left untouched")
	})

	// A real store of 20 topics of 50 KiB each: readable at the limit, refused one byte
	// over it, with the --max-store-bytes that reads it.
	path := storePath(t)
	s, err := OpenFile(path, maxBytes)
	require.NoError(t, err)
	for i := range 20 {
		mustSet(t, s, fmt.Sprintf("topic-%02d", i), `"`+strings.Repeat("x", 50<<10)+`"`)
	}
	require.NoError(t, s.Close())
	content := readBytes(t, path)
	require.Less(t, len(content), 1<<20)
	padded := append(content, strings.Repeat(" ", 1<<20-len(content))...) // whitespace after the document is allowed
	require.NoError(t, os.WriteFile(path, padded, 0o600))
	s, err = OpenFile(path, maxBytes)
	require.NoError(t, err, "a store of exactly the limit opens")
	require.NoError(t, s.Close())

	require.NoError(t, os.WriteFile(path, append(padded, ' '), 0o600))
	_, err = OpenFile(path, maxBytes)
	require.Error(t, err)
	require.Contains(t, err.Error(), "is 1048577 bytes or more, over the limit of 1048576 bytes")
	require.Contains(t, err.Error(), "start with --max-store-bytes 65537 or more")
	s, err = OpenFile(path, 65537)
	require.NoError(t, err, "the --max-store-bytes the message names opens it")
	require.NoError(t, s.Close())
}

func TestFileLimitHasAFloor(t *testing.T) {
	require.Equal(t, int64(1<<20), fileLimit(1))
	require.Equal(t, int64(16*(8<<20)), fileLimit(8<<20), "the default --max-store-bytes reads stores up to 128 MiB")
}

func TestFileSymlinkToAFolderIsRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir := filepath.Dir(storePath(t))
	target := filepath.Join(dir, "a-folder")
	require.NoError(t, os.Mkdir(target, 0o700))
	link := filepath.Join(dir, "link.json")
	require.NoError(t, os.Symlink(target, link))
	_, err := OpenFile(link, testMax)
	requireRefusedUnread(t, target, err, "is a folder")
}
