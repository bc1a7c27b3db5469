//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package rpc

import (
	"os"
	"syscall"
	"time"
)

// pollable returns a non-blocking duplicate of f's descriptor that the runtime poller
// waits on, so a read on it can be interrupted, and a restore func that puts the shared
// file description back in blocking mode once the duplicate is closed (a terminal is
// shared with the shell that started us). ok is false when f cannot be polled (a
// regular file: its reads never wait anyway).
func pollable(f *os.File) (dup *os.File, restore func(), ok bool) {
	raw, err := f.SyscallConn()
	if err != nil {
		return nil, nil, false
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(d uintptr) { fd, dupErr = syscall.Dup(int(d)) }); err != nil || dupErr != nil {
		return nil, nil, false
	}
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if errno != 0 || syscall.SetNonblock(fd, true) != nil {
		_ = syscall.Close(fd)
		return nil, nil, false
	}
	restore = func() {
		if flags&syscall.O_NONBLOCK == 0 {
			_ = syscall.SetNonblock(int(f.Fd()), false)
		}
	}
	dup = os.NewFile(uintptr(fd), f.Name())
	if dup.SetReadDeadline(time.Time{}) != nil { // not pollable after all
		_ = dup.Close()
		restore()
		return nil, nil, false
	}
	return dup, restore, true
}
