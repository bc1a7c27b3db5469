package store

import "github.com/state-sync/state-sync/engine"

// Delete is BeginDelete, then its wait.
func (s *Store) Delete(topic string, expected *engine.Revision) (engine.Revision, error) {
	wait, err := s.BeginDelete(topic, expected)
	if err != nil {
		return "", err
	}
	return wait()
}

// BeginDelete returns the topic to unset, as Begin writes: decided at once in call order
// (with expected, a compare-and-set that fails with a *ConflictError), durable when wait
// returns, on the same group-commit path as every write.
//
// The topic's revision is not reset: the deletion is the next revision, kept as a
// tombstone with no data (Get answers it with Deleted set), and the next Set goes on from
// it. Windows compare revisions: had the topic gone back to "0", the write after the
// delete (revision 1) would be older than what every window has seen, and never applied.
//
// Deleting a topic that holds no data (never set, or deleted already) writes nothing and
// returns its current revision.
func (s *Store) BeginDelete(topic string, expected *engine.Revision) (wait func() (engine.Revision, error), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	current := engine.ZeroRevision
	e, ok := s.latest()[topic]
	if ok {
		current = e.Revision
	}
	if expected != nil && *expected != current {
		return nil, &ConflictError{Topic: topic, Expected: *expected, Current: current}
	}
	if !ok || e.Deleted {
		if last := s.lastWrite[topic]; last != nil {
			// The tombstone is not durable yet: answer once it is, as it will have been.
			return func() (engine.Revision, error) {
				if _, err := s.commit(last); err != nil {
					return "", err
				}
				return current, nil
			}, nil
		}
		return func() (engine.Revision, error) { return current, nil }, nil
	}
	next, err := current.Next()
	if err != nil {
		return nil, err
	}
	return s.stage(topic, entry{Revision: next, Deleted: true}), nil
}
