// Command handshake is the cold-start floor of the benchmark: the least a Go program can do
// for the sidecar's first exchange. It reads one line (the host's initialize request),
// writes one answer line, then stays up until stdin closes, as the sidecar does, so that
// its resident memory can be read as the Go runtime's baseline.
//
// It imports only bufio and os on purpose: whatever the sidecar's start costs beyond this
// program is the cost of what the sidecar links and initialises. Built with one of the
// with_* tags of the files next to this one, it also imports one package (or, with_all,
// every package the sidecar imports), so that the benchmark can show what each costs.
package main

import (
	"bufio"
	"os"
)

// steps are what a variant does before the handshake, as the sidecar does before its
// answer: each starts its work and returns the wait for it (cold-start variants; none in
// the handshake program itself).
var steps []func() (wait func())

func main() {
	var waits []func()
	for _, step := range steps {
		waits = append(waits, step())
	}
	for _, wait := range waits {
		wait()
	}
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadSlice('\n'); err != nil {
		os.Exit(1)
	}
	if _, err := os.Stdout.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}` + "\n")); err != nil {
		os.Exit(1)
	}
	for {
		if _, err := in.ReadSlice('\n'); err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}
