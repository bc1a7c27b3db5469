//go:build windows

package store

// syncDir is a no-op on Windows, where directories cannot be opened for fsync; NTFS
// journals the rename (MoveFileEx) itself.
func syncDir(string) error { return nil }
