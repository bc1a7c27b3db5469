//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package store

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// openWithin runs OpenFile and fails the test if it has not returned within a generous
// bound: a FIFO used to block it forever. On a timeout the FIFO is opened for writing,
// which releases the blocked open, so the goroutine ends with the test.
func openWithin(t *testing.T, path, fifo string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		s, err := OpenFile(path, testMax)
		if err == nil {
			_ = s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = w.Close()
		}
		<-done
		t.Fatalf("OpenFile(%s) blocked on a FIFO for 10 s", path)
		return nil
	}
}

func TestFileThatIsAFIFOIsRefusedAtOnce(t *testing.T) {
	path := storePath(t)
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	err := openWithin(t, path, path)
	requireRefusedUnread(t, path, err, "is a named pipe (FIFO), not a regular file")
}

func TestFileSymlinkToAFIFOIsRefusedAtOnce(t *testing.T) {
	dir := filepath.Dir(storePath(t))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	link := filepath.Join(dir, "store.json")
	require.NoError(t, os.Symlink(fifo, link))
	err := openWithin(t, link, fifo)
	requireRefusedUnread(t, fifo, err, "is a named pipe (FIFO)")
}
