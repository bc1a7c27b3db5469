//go:build !windows

package store

import (
	"fmt"
	"os"
)

// syncDir makes a rename durable: the new directory entry reaches the disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store folder %s: fsync: %w", dir, err)
	}
	return nil
}
