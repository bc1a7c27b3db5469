package rpc

import (
	"bufio"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// lineSource is a reader of one line of n bytes ("x"…"\n"), then a short line, that
// allocates nothing itself: what a test measures is the frame reader's own memory.
type lineSource struct {
	n    int
	tail []byte
}

func (s *lineSource) Read(p []byte) (int, error) {
	if s.n > 0 {
		k := min(len(p), s.n)
		for i := range k {
			p[i] = 'x'
		}
		if s.n -= k; s.n == 0 && k < len(p) {
			p[k] = '\n'
			return k + 1, nil
		}
		if s.n == 0 {
			s.n = -1 // the "\n" is still owed
		}
		return k, nil
	}
	if s.n < 0 {
		s.n = 0
		p[0] = '\n'
		return 1, nil
	}
	if len(s.tail) == 0 {
		return 0, io.EOF
	}
	k := copy(p, s.tail)
	s.tail = s.tail[k:]
	return k, nil
}

// An NDJSON line over the limit is dropped as it streams in: reading a 100 MiB line over
// a 1 MiB limit allocates about the limit in all (the bytes it had to keep before it knew
// the line was too long), and the next line is read whole. Appending to one buffer
// allocated several generations of it, about 4x the limit.
func TestOversizeLineAllocatesAtMostTheLimit(t *testing.T) {
	const limit = 1 << 20
	src := &lineSource{n: 100 << 20, tail: []byte(`{"next":true}` + "\n")}
	f := &frameReader{framing: NDJSON, r: bufio.NewReaderSize(src, 64*1024), maxBytes: limit}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := f.readFrame()
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, errTooLarge)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB to drop a 100 MiB line over a %d KiB limit", allocated>>10, limit>>10)
	require.Less(t, allocated, uint64(limit+limit/4), "bytes allocated while dropping the oversize line")

	next, err := f.readFrame()
	require.NoError(t, err)
	require.Equal(t, `{"next":true}`, string(next))
}

// A line of exactly the limit, longer than the read buffer, comes back whole.
func TestLineOfTheLimitIsKept(t *testing.T) {
	const limit = 300 << 10
	src := &lineSource{n: limit}
	f := &frameReader{framing: NDJSON, r: bufio.NewReaderSize(src, 64*1024), maxBytes: limit}
	line, err := f.readFrame()
	require.NoError(t, err)
	require.Len(t, line, limit)
	_, err = f.readFrame()
	require.ErrorIs(t, err, io.EOF)
}
