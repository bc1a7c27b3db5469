// Package store is the sidecar's embedded source of truth: the state of each topic with
// a revision bumped on every write, in memory or in a crash-safe file.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/state-sync/state-sync/engine"
)

// ConflictError is a compare-and-set that lost: the topic is at Current, not Expected.
type ConflictError struct {
	Topic    string
	Expected engine.Revision
	Current  engine.Revision
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("topic %q is at revision %s, not the expected %s: read it again (state.get), then retry the write", e.Topic, e.Current, e.Expected)
}

// TooLargeError is data over the per-topic limit.
type TooLargeError struct {
	Topic string
	Size  int
	Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("data for topic %q is %d bytes, over the limit of %d (--max-store-bytes)", e.Topic, e.Size, e.Limit)
}

// WriteError is a write the file backend could not make durable (disk full, folder gone,
// permissions). Nothing changed: the store and its file still hold the previous state.
type WriteError struct {
	Topic string
	Err   error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("the write to topic %q was not saved, nothing changed: %v", e.Topic, e.Err)
}
func (e *WriteError) Unwrap() error { return e.Err }

type entry struct {
	Revision engine.Revision `json:"revision"`
	Data     json.RawMessage `json:"data"`
}

// Store holds topics. Writes are serialised; a write is acknowledged only once it is
// durable in the backend.
type Store struct {
	maxBytes int
	file     *fileBackend // nil: memory only

	mu     sync.Mutex
	epoch  string
	topics map[string]entry
}

// NewMemory returns a store that lives as long as the process. Its epoch is fresh, so
// windows of an earlier sidecar that saw higher revisions accept the new ones.
func NewMemory(maxBytes int) *Store {
	return &Store{maxBytes: maxBytes, epoch: newEpoch(), topics: map[string]entry{}}
}

// Kind is "memory" or "file".
func (s *Store) Kind() string {
	if s.file != nil {
		return "file"
	}
	return "memory"
}

// Epoch names this life of the store's revisions.
func (s *Store) Epoch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Has reports whether topic holds data.
func (s *Store) Has(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.topics[topic]
	return ok
}

// Get returns the topic's snapshot, or an empty one (revision "0", no data) when the
// topic was never set.
func (s *Store) Get(topic string) (engine.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.topics[topic]
	if !ok {
		return engine.Snapshot{Revision: engine.ZeroRevision, Epoch: s.epoch}, nil
	}
	return engine.Snapshot{Revision: e.Revision, Epoch: s.epoch, Data: e.Data}, nil
}

// Set stores data, which must be one JSON value, as the topic's new state at the next
// revision (last writer wins); data is copied and kept byte for byte. With
// expected set, it is a compare-and-set: on mismatch nothing changes and the error is a
// *ConflictError carrying the current revision.
func (s *Store) Set(topic string, data json.RawMessage, expected *engine.Revision) (engine.Revision, error) {
	if len(data) > s.maxBytes {
		return "", &TooLargeError{Topic: topic, Size: len(data), Limit: s.maxBytes}
	}
	// The rpc layer hands over only JSON it parsed. A library caller might not, and a file
	// holding bytes that are not JSON could never be opened again, so the file store
	// checks (a scan at ~300 MB/s, small next to the write); memory trusts the caller.
	if len(data) == 0 || (s.file != nil && !json.Valid(data)) {
		return "", &engine.FieldError{Field: "data", Err: errors.New("is not a JSON value")}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	current := engine.ZeroRevision
	if e, ok := s.topics[topic]; ok {
		current = e.Revision
	}
	if expected != nil && *expected != current {
		return "", &ConflictError{Topic: topic, Expected: *expected, Current: current}
	}
	next, err := current.Next()
	if err != nil {
		return "", err
	}
	written := entry{Revision: next, Data: append(json.RawMessage(nil), data...)}
	if s.file != nil {
		if err := s.file.save(s.epoch, s.topics, topic, written); err != nil {
			return "", &WriteError{Topic: topic, Err: err}
		}
	}
	s.topics[topic] = written
	return next, nil
}

// Close releases the backend (the file store's lock). The store must not be used after.
func (s *Store) Close() error {
	if s.file == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.file.close()
}

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
