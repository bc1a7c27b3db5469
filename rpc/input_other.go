//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package rpc

import "os"

// pollable is not available here: a blocking *os.File input is closed to interrupt it
// (see openInput).
func pollable(*os.File) (*os.File, func(), bool) { return nil, nil, false }
