//go:build !darwin && !dragonfly && !freebsd && !linux && !netbsd && !openbsd

package store

// openReadFlag: no FIFO can sit at a file path here (Windows named pipes live under
// \\.\pipe\), so opening never blocks.
const openReadFlag = 0
