//go:build !windows

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// syncDir makes a rename durable: the new directory entry reaches the disk. A file
// system that cannot fsync a folder (some FUSE and network mounts answer EINVAL or
// ENOTSUP) is not an error: the rename is done and there is nothing more to ask for.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("store folder %s: fsync: %w", dir, err)
	}
	return nil
}
