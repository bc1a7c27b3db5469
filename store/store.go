// Package store is the sidecar's embedded source of truth: the state of each topic with
// a revision bumped on every write, in memory or in a crash-safe file.
package store

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
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
	// LimitName says where the limit is set; empty: --max-store-bytes. A store whose
	// limit is its server's (NATS) names that, so the user knows what to change.
	LimitName string
}

func (e *TooLargeError) Error() string {
	name := e.LimitName
	if name == "" {
		name = "--max-store-bytes"
	}
	return fmt.Sprintf("data for topic %q is %d bytes, over the limit of %d (%s)", e.Topic, e.Size, e.Limit, name)
}

// FileTooLargeError is a write that would take the store file past the size OpenFile
// reads (fileLimit): every topic together, where TooLargeError is one topic's data.
type FileTooLargeError struct {
	Topic string
	Size  int64
	Limit int64
}

func (e *FileTooLargeError) Error() string {
	return fmt.Sprintf("the write to topic %q would make the store file %d bytes, over its limit of %d (%d × --max-store-bytes, at least 1 MiB), which the sidecar could not read at its next start: nothing changed; delete topics you no longer need from the file, or raise --max-store-bytes", e.Topic, e.Size, e.Limit, fileSizeFactor)
}

// WriteError is a write the file backend could not make durable (disk full, folder gone,
// permissions). Nothing changed: the store and its file still hold the previous state.
type WriteError struct {
	Topic string
	Err   error
	// Unknown: the write was sent but its acknowledgement never came (a remote store
	// timed out), so it may have been saved; state.get tells.
	Unknown bool
}

func (e *WriteError) Error() string {
	if e.Unknown {
		return fmt.Sprintf("the write to topic %q was not acknowledged, so it may or may not be saved (state.get tells): %v", e.Topic, e.Err)
	}
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

// fileSize is the size of the store file with topic at rev holding data, every other
// topic as it stands: what fileBackend.write would write. Called with s.mu held.
func (s *Store) fileSize(topic string, rev engine.Revision, data json.RawMessage) int64 {
	head, _ := json.Marshal(s.epoch)
	size := int64(len(`{"format":"`+fileFormat+`","version":,"epoch":,"topics":{`+"\n}}\n") + len(strconv.Itoa(fileVersion)) + len(head))
	add := func(name string, rev engine.Revision, data json.RawMessage) {
		quoted, _ := json.Marshal(name)
		// ",\n" + name + `:{"revision":"…","data":` + data + "}"
		size += int64(2 + len(quoted) + len(`:{"revision":"","data":}`) + len(rev) + len(data))
	}
	for name, e := range s.latest() {
		if name != topic {
			add(name, e.Revision, e.Data)
		}
	}
	add(topic, rev, data)
	return size
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
	if s.file != nil {
		// A file OpenFile would refuse to read must never be written: the store would
		// not open again at the next start.
		limit := fileLimit(s.maxBytes)
		if size := s.fileSize(topic, next, data); size > limit {
			return nil, &FileTooLargeError{Topic: topic, Size: size, Limit: limit}
		}
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

// newEpoch names a life of the memory store's revisions: 64 bits that differ between
// processes. math/rand/v2's generator is seeded from the OS's entropy at process start,
// which is all an epoch needs (it is no secret); crypto/rand would link and initialise the
// FIPS crypto stack at every start for it.
func newEpoch() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}
