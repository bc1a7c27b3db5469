package store

import (
	"encoding/json"
	"errors"

	"github.com/state-sync/state-sync/engine"
)

// Update is BeginUpdate, then its wait.
func (s *Store) Update(topic string, expected *engine.Revision, update func(current engine.Snapshot) (json.RawMessage, error)) (engine.Revision, error) {
	wait, err := s.BeginUpdate(topic, expected, update)
	if err != nil {
		return "", err
	}
	return wait()
}

// BeginUpdate is a read-modify-write as one Begin: update gets the topic's latest state
// (durable or not, as a compare-and-set sees it: its revision, and its data, empty when
// the topic was never set or is deleted) and returns the new data, or an error that is
// returned as it is with nothing written. Everything is decided at once, in call order,
// under the store's lock, so no write can come between the read and the write (state.patch
// is atomic through this); wait is Begin's, on the same durable path.
//
// update runs with the store locked: it must not call the store, and should be quick (a
// JSON Patch on a topic's data, bounded by --max-store-bytes). The data it returns is
// kept as it is, not copied (a megabyte per write otherwise): it must be a slice nothing
// else holds or changes, as the output of jsonpatch.Apply is.
func (s *Store) BeginUpdate(topic string, expected *engine.Revision, update func(current engine.Snapshot) (json.RawMessage, error)) (wait func() (engine.Revision, error), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	current := engine.Snapshot{Revision: engine.ZeroRevision, Epoch: s.epoch}
	if e, ok := s.latest()[topic]; ok {
		current.Revision, current.Data, current.Deleted = e.Revision, e.Data, e.Deleted
	}
	if expected != nil && *expected != current.Revision {
		return nil, &ConflictError{Topic: topic, Expected: *expected, Current: current.Revision}
	}
	data, err := update(current)
	if err != nil {
		return nil, err
	}
	if len(data) > s.maxBytes {
		return nil, &TooLargeError{Topic: topic, Size: len(data), Limit: s.maxBytes}
	}
	if len(data) == 0 || (s.file != nil && !json.Valid(data)) {
		return nil, &engine.FieldError{Field: "data", Err: errors.New("is not a JSON value")}
	}
	next, err := current.Revision.Next()
	if err != nil {
		return nil, err
	}
	if s.file != nil {
		limit := fileLimit(s.maxBytes)
		if size := s.fileSize(topic, next, data); size > limit {
			return nil, &FileTooLargeError{Topic: topic, Size: size, Limit: limit}
		}
	}
	return s.stage(topic, entry{Revision: next, Data: data}), nil
}
