// Command floorchild is the benchmark's floor: a trivial child that moves the bytes a
// sidecar moves, in the same round trips, through the same kind of pipes, driven by the
// same host code, and does none of a sidecar's work (no JSON parse, no engine, no locks).
//
//	floorchild N
//
// It reads the host's lines in order and, by their head only:
//   - a notification (an invalidate): with N > 0 and no fetch in flight, one getSnapshot
//     request, as a sidecar with N host-sourced channels on the topic sends; with N = 0, or
//     a fetch in flight, nothing (a stale invalidate, a coalesced one);
//   - the answer to that getSnapshot: one apply request per channel c0000 … c<N-1>, the
//     envelope the sidecar writes around the snapshot's data as received, all flushed
//     together;
//   - an answer to an apply: read, nothing else (the sidecar routes it to its caller);
//   - any other request: an empty result, as the sidecar answers channel.status.
//
// It exits 1, with the reason on stderr, on a line it does not recognise, so that a change
// in the host's wording fails the benchmark instead of measuring something else.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

const topic = "bench"

func main() {
	if len(os.Args) != 2 {
		fail("usage: floorchild CHANNELS")
	}
	channels, err := strconv.Atoi(os.Args[1])
	if err != nil || channels < 0 {
		fail(fmt.Sprintf("CHANNELS %q: want a count ≥ 0", os.Args[1]))
	}
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	heads := make([][]byte, channels) // `,"method":"apply","params":{"channel":"c0000","topic":"bench","revision":"`
	for i := range heads {
		heads[i] = fmt.Appendf(nil, `,"method":"apply","params":{"channel":"c%04d","topic":%q,"revision":"`, i, topic)
	}
	var nextID uint64
	var fetchID []byte // the id of the getSnapshot in flight, nil when none
	var big []byte
	for {
		line, err := in.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			big = append(big[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = in.ReadSlice('\n')
				big = append(big, line...)
			}
			line = big
		}
		if err != nil {
			return // stdin closed: the host is done
		}
		line = bytes.TrimRight(line, "\r\n")
		rest, ok := bytes.CutPrefix(line, []byte(`{"jsonrpc":"2.0",`))
		if !ok {
			fail("unexpected line: " + head(line))
		}
		if bytes.HasPrefix(rest, []byte(`"method":`)) { // a notification
			if channels > 0 && fetchID == nil {
				nextID++
				fetchID = strconv.AppendUint(nil, nextID, 10)
				out.WriteString(`{"jsonrpc":"2.0","id":`)
				out.Write(fetchID)
				out.WriteString(`,"method":"getSnapshot","params":{"topic":"` + topic + `"}}` + "\n")
				flush(out)
			}
			continue
		}
		rest, ok = bytes.CutPrefix(rest, []byte(`"id":`))
		end := bytes.IndexByte(rest, ',')
		if !ok || end < 0 {
			fail("unexpected line: " + head(line))
		}
		id, rest := rest[:end], rest[end+1:]
		switch {
		case bytes.HasPrefix(rest, []byte(`"method":`)):
			out.WriteString(`{"jsonrpc":"2.0","id":`)
			out.Write(id)
			out.WriteString(`,"result":{}}` + "\n")
			flush(out)
		case fetchID != nil && bytes.Equal(id, fetchID):
			fetchID = nil
			rev, data := snapshot(rest, line)
			for _, h := range heads {
				nextID++
				out.WriteString(`{"jsonrpc":"2.0","id":`)
				out.Write(strconv.AppendUint(nil, nextID, 10))
				out.Write(h)
				out.Write(rev)
				out.WriteString(`","data":`)
				out.Write(data)
				out.WriteString("}}\n")
			}
			flush(out)
		case bytes.HasPrefix(rest, []byte(`"result":`)) || bytes.HasPrefix(rest, []byte(`"error":`)):
			// an apply acknowledged
		default:
			fail("unexpected line: " + head(line))
		}
	}
}

// snapshot slices the revision and the data out of `"result":{"revision":"R","data":D}}`.
func snapshot(rest, line []byte) (rev, data []byte) {
	rest, ok := bytes.CutPrefix(rest, []byte(`"result":{"revision":"`))
	end := bytes.IndexByte(rest, '"')
	if !ok || end < 0 {
		fail("unexpected getSnapshot answer: " + head(line))
	}
	rev, rest = rest[:end], rest[end+1:]
	data, ok = bytes.CutPrefix(rest, []byte(`,"data":`))
	if !ok || !bytes.HasSuffix(data, []byte("}}")) {
		fail("unexpected getSnapshot answer: " + head(line))
	}
	return rev, data[:len(data)-2]
}

func flush(w *bufio.Writer) {
	if err := w.Flush(); err != nil {
		os.Exit(0) // stdout closed: the host is gone
	}
}

func head(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "floorchild:", msg)
	os.Exit(1)
}
