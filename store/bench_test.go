package store

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkSet is the cost of one state.set in the store (the sidecar adds its JSON-RPC
// round trip): writes round-robin over the topics, each with data of the given size.
// docs/store.md quotes file/10-topics-1KiB:
//
//	go test -run '^$' -bench . -benchtime 2s ./store/
func BenchmarkSet(b *testing.B) {
	for _, c := range []struct {
		topics, size int
	}{{10, 1 << 10}, {100, 1 << 10}, {10, 64 << 10}, {1, 1 << 20}} {
		data := json.RawMessage(`"` + strings.Repeat("x", c.size-2) + `"`)
		name := fmt.Sprintf("%d-topics-%dKiB", c.topics, c.size>>10)
		b.Run("memory/"+name, func(b *testing.B) { benchSet(b, NewMemory(8<<20), c.topics, data) })
		b.Run("file/"+name, func(b *testing.B) {
			s, err := OpenFile(filepath.Join(b.TempDir(), "store.json"), 8<<20)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchSet(b, s, c.topics, data)
		})
	}
}

func benchSet(b *testing.B, s *Store, topics int, data json.RawMessage) {
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprint("topic-", i)
		if _, err := s.Set(names[i], data, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := s.Set(names[i%topics], data, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
