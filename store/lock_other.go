//go:build !windows && !darwin && !dragonfly && !freebsd && !linux && !netbsd && !openbsd

package store

import "time"

// fileLock is a no-op where flock(2) is not available.
type fileLock struct{}

func acquireLock(string, time.Duration) (*fileLock, error) { return &fileLock{}, nil }

func (*fileLock) release() error { return nil }
