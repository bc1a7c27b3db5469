//go:build with_goodbyes

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// With the tag, the program first catches the goodbyes the sidecar promises to exit 0 on
// (SIGTERM, SIGINT, SIGHUP) and ignores SIGPIPE, on a goroutine of its own, and answers
// once that is done, as the sidecar does (cold-start variants).
func init() {
	steps = append(steps, func() func() {
		done := make(chan struct{})
		go func() {
			signal.Ignore(syscall.SIGPIPE)
			signal.Notify(make(chan os.Signal, 1), syscall.SIGTERM, os.Interrupt, syscall.SIGHUP)
			close(done)
		}()
		return func() { <-done }
	})
}
