//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package e2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// A --store-file that is a named pipe used to block start-up until something wrote to it;
// /dev/zero was read until memory ran out. Both stop the sidecar at once, with exit code 1.
func TestStoreFileThatIsNotARegularFileStopsTheSidecar(t *testing.T) {
	t.Run("named pipe", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		require.NoError(t, syscall.Mkfifo(path, 0o600))
		code, stdout, stderr := runSidecar(t, "--store-file", path)
		require.Equal(t, 1, code, "stderr: %s", stderr)
		require.Empty(t, stdout, "stdout carries protocol only")
		require.Contains(t, stderr, path+" is a named pipe (FIFO), not a regular file")
		require.NoFileExists(t, path+".lock")
	})
	t.Run("device", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Skip("no /dev/zero")
		}
		code, _, stderr := runSidecar(t, "--store-file", "/dev/zero")
		require.Equal(t, 1, code, "stderr: %s", stderr)
		require.Contains(t, stderr, "/dev/zero is a device, not a regular file")
	})
}
