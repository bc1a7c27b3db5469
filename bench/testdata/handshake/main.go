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

func main() {
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
