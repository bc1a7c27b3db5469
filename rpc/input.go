package rpc

import (
	"io"
	"os"
	"time"
)

// input is the reader Serve's read loop reads from, and how Serve ends a read in
// progress so that it can join the read loop before it returns.
type input struct {
	io.Reader
	interrupt func() // makes the Read in progress, and every later one, return at once
	release   func() // after the read loop has exited: undo what openInput changed
}

// openInput makes r interruptible:
//
//   - an *os.File the runtime poller can wait on (a pipe or socket opened non-blocking)
//     gets a read deadline in the past;
//   - a blocking *os.File (what a spawned process gets as stdin) is read through a
//     non-blocking duplicate of its descriptor where the platform allows (see
//     pollable), then as above;
//   - any other io.Closer (io.PipeReader in tests) is closed;
//   - anything else (a bytes.Reader, a strings.Reader) never blocks.
//
// Nothing else reads r once Serve returns: a frame the host writes afterwards is never
// dispatched.
func openInput(r io.Reader) input {
	noop := func() {}
	if f, ok := r.(*os.File); ok {
		if f.SetReadDeadline(time.Time{}) == nil {
			return input{Reader: f, interrupt: func() { _ = f.SetReadDeadline(time.Now()) }, release: func() { _ = f.SetReadDeadline(time.Time{}) }}
		}
		if dup, restore, ok := pollable(f); ok {
			return input{Reader: dup, interrupt: func() { _ = dup.SetReadDeadline(time.Now()) }, release: func() { _ = dup.Close(); restore() }}
		}
		return input{Reader: f, interrupt: func() { _ = f.Close() }, release: noop}
	}
	if c, ok := r.(io.Closer); ok {
		return input{Reader: r, interrupt: func() { _ = c.Close() }, release: noop}
	}
	return input{Reader: r, interrupt: noop, release: noop}
}
