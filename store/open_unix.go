//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package store

import "syscall"

// openReadFlag makes opening the store file for reading return at once even if it has
// become a FIFO since it was checked (open blocks until a writer comes otherwise); it
// changes nothing for a regular file.
const openReadFlag = syscall.O_NONBLOCK
