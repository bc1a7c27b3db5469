package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// The floor: the same bytes through the same kind of pipes and a trivial child process,
// with no protocol. The child is this binary re-executed in echo mode: every line it reads
// is written back `copies` times, except acknowledgement lines (starting with 'a'), which
// it drops. A fan-out round of the floor is one payload line in and N copies out, each
// acknowledged, exactly the bytes a sidecar round moves (snapshot in once, N applies out,
// N acks in), minus every JSON-RPC envelope, parse and engine step.

const echoMode = "__echo"

// runEcho is the child's main.
func runEcho(args []string) int {
	copies := 1
	if len(args) > 0 {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "echo: want a copy count")
			return 2
		}
		copies = n
	}
	r := bufio.NewReaderSize(os.Stdin, 4<<20)
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			buf := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if err != nil {
			return 0
		}
		if len(line) > 0 && line[0] == 'a' {
			continue
		}
		for range copies {
			if _, err := w.Write(line); err != nil {
				return 0
			}
		}
		if err := w.Flush(); err != nil {
			return 0
		}
	}
}

// echoChild is a running echo child.
type echoChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	w     *writer
}

func startEcho(copies int) (*echoChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, echoMode, strconv.Itoa(copies))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &echoChild{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 4<<20), w: newWriter(stdin)}, nil
}

func (e *echoChild) close() {
	e.w.close()
	_ = e.stdin.Close()
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = e.cmd.Process.Kill()
		<-done
	}
}

// floorRounds measures rounds of "one line of the snapshot's size in, copies lines out,
// each acknowledged", as fanout measures the sidecar. The payload line is shaped like a
// getSnapshot answer, the ack like an apply answer.
func floorRounds(copies int, payload []byte, b budget) ([]time.Duration, error) {
	e, err := startEcho(copies)
	if err != nil {
		return nil, fmt.Errorf("starting the echo child: %w", err)
	}
	defer e.close()
	line := make([]byte, 0, len(payload)+64)
	line = append(line, `{"jsonrpc":"2.0","id":1,"result":{"revision":"1","data":`...)
	line = append(line, payload...)
	line = append(line, "}}\n"...)
	ack := []byte(`a{"jsonrpc":"2.0","id":1,"result":{}}` + "\n")

	type result struct {
		at  time.Time
		err error
	}
	got := make(chan result, 1)
	start := make(chan struct{})
	go func() {
		// The reader: counts lines and acknowledges each, as the host does applies.
		for range start {
			for range copies {
				if _, err := readLine(e.out); err != nil {
					got <- result{err: err}
					return
				}
				e.w.send(nil, ack)
			}
			got <- result{at: time.Now()}
		}
	}()
	defer close(start)

	var samples []time.Duration
	deadline := time.Now().Add(b.maxTime)
	for round := 0; round < b.warmup+b.rounds; round++ {
		if round >= b.warmup+b.minRounds && time.Now().After(deadline) {
			break
		}
		start <- struct{}{}
		t0 := time.Now()
		e.w.send(nil, line)
		select {
		case r := <-got:
			if r.err != nil {
				return nil, fmt.Errorf("echo child: %w", r.err)
			}
			if round >= b.warmup {
				samples = append(samples, r.at.Sub(t0))
			}
		case <-time.After(roundTimeout):
			return nil, fmt.Errorf("echo child: no answer within %s", roundTimeout)
		}
	}
	return samples, nil
}

// budget bounds a measured loop in rounds and time: rounds at most, and once maxTime has
// passed, no more than minRounds.
type budget struct {
	warmup    int
	rounds    int
	minRounds int
	maxTime   time.Duration
}
