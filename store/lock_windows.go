//go:build windows

package store

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// fileLock is the lock file opened with no sharing: a second open fails with a sharing
// violation until this handle is closed, which Windows does when the process dies.
type fileLock struct{ h syscall.Handle }

const errorSharingViolation syscall.Errno = 32

func acquireLock(path string, wait time.Duration) (*fileLock, error) {
	name, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		h, err := syscall.CreateFile(name, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil, syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL, 0)
		if err == nil {
			return &fileLock{h: h}, nil
		}
		if !errors.Is(err, errorSharingViolation) {
			return nil, fmt.Errorf("cannot create the lock file %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("in use by another process (lock %s held for more than %s): only one statesync-sidecar may use a store file at a time; give each app instance its own --store-file, or stop the other sidecar", path, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *fileLock) release() error { return syscall.CloseHandle(l.h) }
