package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The write side of the load bound: a state.set that would make the file larger than
// OpenFile reads is refused, so that the store always opens again.
func TestAWriteNeverTakesTheFilePastWhatOpenReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.json")
	const maxBytes = 64 << 10 // fileLimit: the 1 MiB minimum
	s, err := OpenFile(path, maxBytes)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	data := json.RawMessage(`"` + strings.Repeat("x", maxBytes-2) + `"`)
	var refused *FileTooLargeError
	written := 0
	for i := range 40 {
		topic := fmt.Sprintf("topic-%02d", i)
		wait, err := s.Begin(topic, data, nil)
		if errors.As(err, &refused) {
			break
		}
		require.NoError(t, err)
		_, err = wait()
		require.NoError(t, err)
		written++
		info, err := os.Stat(path)
		require.NoError(t, err)
		// The size Begin checks is the size written (one byte over at most).
		s.mu.Lock()
		estimate := s.fileSize(topic, s.topics[topic].Revision, data)
		s.mu.Unlock()
		require.InDelta(t, info.Size(), estimate, 1, "topic %d", i)
	}
	require.NotNil(t, refused, "no write was refused after %d topics of %d bytes", written, maxBytes)
	require.Equal(t, int64(1<<20), refused.Limit)
	require.Greater(t, refused.Size, refused.Limit)
	require.Contains(t, refused.Error(), "--max-store-bytes")
	require.Equal(t, 15, written, "16 topics of 64 KiB and the file's own bytes are over 1 MiB")
	require.NoError(t, s.Close())
	reopened, err := OpenFile(path, maxBytes)
	require.NoError(t, err, "the store must open again")
	require.NoError(t, reopened.Close())
	s, err = OpenFile(path, maxBytes) // for the deferred Close
	require.NoError(t, err)
}
