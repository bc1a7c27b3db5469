// Package store is the sidecar's embedded source of truth: the state of each topic with
// a revision bumped on every write, in memory or in a crash-safe file.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	Data     json.RawMessage `json:"data,omitempty"` // absent only when Deleted
	// Deleted: the topic was deleted at Revision and holds no data. The entry stays (a
	// tombstone) so that the topic's revisions go on from it: see Store.BeginDelete.
	Deleted bool `json:"deleted,omitempty"`
}

// Store holds topics. Revisions are assigned in call order (a compare-and-set is exact);
// a write is acknowledged only once it is durable in the backend. Concurrent writes to
// the file backend share one rewrite and fsync (group commit).
type Store struct {
	maxBytes int
	file     *fileBackend // nil: memory only

	// commitMu is held by the one goroutine writing the file, for the whole write; a
	// writer that waited for it finds its write committed already, or commits it with
	// every write queued behind it. Taken before mu, never while holding it.
	commitMu sync.Mutex

	mu    sync.Mutex
	epoch string // written at open, read under mu
	// topics is the durable state: what Get and a reopen see. Under mu; for the file
	// backend it is replaced as a whole by each commit, never changed in place.
	topics map[string]entry
	// pending (file backend) is topics with every write that has its revision, durable
	// or not: revisions and compare-and-sets are decided against it. Under mu; nil until
	// the first write, and after a failed commit (which drops every write in it).
	pending map[string]entry
	// queue (file backend) holds the writes that have their revision and wait for a
	// committer, in revision order. Under mu.
	queue []*pendingWrite
	// lastWrite (file backend) is the last write begun on each topic and not yet
	// committed, for Get to wait on. Under mu; an entry goes when its write is committed.
	lastWrite map[string]*pendingWrite
}

// pendingWrite is one write to the file backend between Begin and its commit.
type pendingWrite struct {
	topic string
	rev   engine.Revision
	err   error         // written by the committer before done is closed
	done  chan struct{} // closed once the write is durable or has failed
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

// Has reports whether topic holds data, counting writes not yet durable.
func (s *Store) Has(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.latest()[topic]
	return ok && !e.Deleted
}

// latest is pending when there is one, else topics. Call with mu held.
func (s *Store) latest() map[string]entry {
	if s.pending != nil {
		return s.pending
	}
	return s.topics
}

// Get returns the topic's snapshot, or an empty one (revision "0", no data) when the
// topic was never set. It reads its writes: the snapshot holds every write to the topic
// begun before the call that did not fail, so it waits for those to be durable.
func (s *Store) Get(topic string) (engine.Snapshot, error) {
	s.mu.Lock()
	last := s.lastWrite[topic]
	s.mu.Unlock()
	if last != nil {
		_, _ = s.commit(last) // a failure is the writer's to report: the snapshot is without it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.topics[topic]
	if !ok {
		return engine.Snapshot{Revision: engine.ZeroRevision, Epoch: s.epoch}, nil
	}
	return engine.Snapshot{Revision: e.Revision, Epoch: s.epoch, Data: e.Data, Deleted: e.Deleted}, nil
}

// Set stores data, which must be one JSON value, as the topic's new state at the next
// revision (last writer wins); data is copied and kept byte for byte. With
// expected set, it is a compare-and-set: on mismatch nothing changes and the error is a
// *ConflictError carrying the current revision. It returns once the write is durable.
func (s *Store) Set(topic string, data json.RawMessage, expected *engine.Revision) (engine.Revision, error) {
	wait, err := s.Begin(topic, data, expected)
	if err != nil {
		return "", err
	}
	return wait()
}

// Begin is Set in two steps. It decides the write at once, in call order: the checks,
// the compare-and-set and the revision, with no I/O. wait blocks until the write is
// durable and returns its revision, or a *WriteError when it could not be saved (then
// nothing of it is kept, nor of any write begun after it and not yet durable: their
// revisions and compare-and-sets counted on it). Get sees the write only once it is
// durable. Every wait must be called; a write nobody waits for is saved with the next
// one, or never.
func (s *Store) Begin(topic string, data json.RawMessage, expected *engine.Revision) (wait func() (engine.Revision, error), err error) {
	if len(data) > s.maxBytes {
		return nil, &TooLargeError{Topic: topic, Size: len(data), Limit: s.maxBytes}
	}
	// The rpc layer hands over only JSON it parsed. A library caller might not, and a file
	// holding bytes that are not JSON could never be opened again, so the file store
	// checks (a scan at ~300 MB/s, small next to the write); memory trusts the caller.
	if len(data) == 0 || (s.file != nil && !json.Valid(data)) {
		return nil, &engine.FieldError{Field: "data", Err: errors.New("is not a JSON value")}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	current := engine.ZeroRevision
	if e, ok := s.latest()[topic]; ok {
		current = e.Revision
	}
	if expected != nil && *expected != current {
		return nil, &ConflictError{Topic: topic, Expected: *expected, Current: current}
	}
	next, err := current.Next()
	if err != nil {
		return nil, err
	}
	return s.stage(topic, entry{Revision: next, Data: append(json.RawMessage(nil), data...)}), nil
}

// stage makes written the topic's latest entry, with its revision decided, and returns
// the wait of Begin. Call with mu held.
func (s *Store) stage(topic string, written entry) (wait func() (engine.Revision, error)) {
	next := written.Revision
	if s.file == nil {
		s.topics[topic] = written
		return func() (engine.Revision, error) { return next, nil }
	}
	if s.pending == nil {
		s.pending = maps.Clone(s.topics)
	}
	s.pending[topic] = written
	w := &pendingWrite{topic: topic, rev: next, done: make(chan struct{})}
	s.queue = append(s.queue, w)
	if s.lastWrite == nil {
		s.lastWrite = map[string]*pendingWrite{}
	}
	s.lastWrite[topic] = w
	return func() (engine.Revision, error) { return s.commit(w) }
}

// commit returns once w is durable or has failed. The first writer to get commitMu
// writes the file for every write queued so far (one rewrite, one fsync); the writers
// queued behind it find their answer when they get commitMu in turn.
func (s *Store) commit(w *pendingWrite) (engine.Revision, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	select {
	case <-w.done: // committed, or failed, with an earlier batch
	default:
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		next := maps.Clone(s.pending)
		epoch := s.epoch
		s.mu.Unlock()
		err := s.file.write(fileDoc{Format: fileFormat, Version: fileVersion, Epoch: epoch, Topics: next})
		s.mu.Lock()
		if err == nil {
			s.topics = next
		} else {
			batch = append(batch, s.queue...) // begun on top of the failed ones
			s.queue, s.pending = nil, nil
		}
		for _, b := range batch {
			if s.lastWrite[b.topic] == b {
				delete(s.lastWrite, b.topic)
			}
		}
		s.mu.Unlock()
		for _, b := range batch {
			if err != nil {
				b.err = &WriteError{Topic: b.topic, Err: err}
			}
			close(b.done)
		}
	}
	if w.err != nil {
		return "", w.err
	}
	return w.rev, nil
}

// Close releases the backend (the file store's lock). The store must not be used after.
func (s *Store) Close() error {
	if s.file == nil {
		return nil
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.file.close()
}

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
