package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/internal/jsonpatch"
)

// StoreUpdater is the part of a Store that state.patch needs: a read-modify-write decided
// at once, in call order, as Begin decides a write (see store.Store.BeginUpdate). A store
// that lacks it answers state.patch with -32601 naming the store; the memory and file
// stores have it.
type StoreUpdater interface {
	// BeginUpdate keeps the data update returns without copying it.
	BeginUpdate(topic string, expected *engine.Revision, update func(current engine.Snapshot) (json.RawMessage, error)) (wait func() (engine.Revision, error), err error)
}

type patchParams struct {
	Topic            string          `json:"topic"`
	Patch            json.RawMessage `json:"patch"`
	ExpectedRevision *string         `json:"expectedRevision"`
	SourceID         string          `json:"sourceId"`
}

// beginPatch checks a state.patch and begins it, as beginSet does a state.set: the patch
// is applied to the topic's latest data under the store's lock, so the whole patch lands
// on exactly the revision it was checked against, or nothing changes; the result is
// written on state.set's durable path.
func (s *Server) beginPatch(params json.RawMessage) (finish func(context.Context) (any, error), err error) {
	if s.cfg.Store == nil {
		return nil, errorf(CodeSourceConflict, "the embedded store is not available in this sidecar")
	}
	updater, ok := s.cfg.Store.(StoreUpdater)
	if !ok {
		return nil, errorf(jsonrpc2.CodeMethodNotFound, "state.patch is not supported by the %s store of this sidecar: read the topic (state.get), change it, and write it with state.set and expectedRevision instead", s.cfg.Store.Kind())
	}
	var p patchParams
	if err := decodeStrict(params, &p); err != nil {
		return nil, err
	}
	expected, err := s.storeWriteTarget("state.patch", p.Topic, p.ExpectedRevision)
	if err != nil {
		return nil, err
	}
	if len(p.Patch) == 0 || string(p.Patch) == "null" {
		return nil, invalidParams("patch: is missing: send an RFC 6902 JSON Patch, an array such as [{\"op\":\"replace\",\"path\":\"/theme\",\"value\":\"dark\"}]")
	}
	if p.Patch[0] != '[' {
		return nil, invalidParams("patch: must be an array of RFC 6902 operations, such as [{\"op\":\"replace\",\"path\":\"/theme\",\"value\":\"dark\"}]")
	}
	patch, err := jsonpatch.DecodePatch(p.Patch)
	if err != nil {
		return nil, patchError(err, "")
	}
	var base engine.Snapshot // what the patch applied to
	// Taken here, not in the update, which runs under the store's lock.
	hist := s.topicHistory(p.Topic)
	wait, err := updater.BeginUpdate(p.Topic, expected, func(current engine.Snapshot) (json.RawMessage, error) {
		base = current
		if len(current.Data) == 0 {
			what := "was never set"
			if current.Deleted {
				what = "was deleted"
			}
			return nil, invalidParams("topic %q %s, so it has no data to patch: create it with state.set first", quoteBounded(p.Topic), what)
		}
		apply := jsonpatch.Apply
		if s.patched.wrote(p.Topic, current.Data) {
			apply = jsonpatch.ApplyValid
			// The topic's delta channels have had this revision: the history knows
			// whether its names repeat, so the scans may stop at the first match.
			if hist != nil && hist.uniqueNames(revKey{current.Epoch, current.Revision}, current.Data) {
				apply = jsonpatch.ApplyValidUniqueNames
				s.patched.countUnique()
			}
		}
		out, err := apply(current.Data, patch)
		if err != nil {
			return nil, patchError(err, current.Revision)
		}
		s.patched.record(p.Topic, out)
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	// The patch is the delta from base to the revision the write gets: the topic's delta
	// channels at base get it without a diff. Seeded only once the write is durable (a
	// failed write's revision is given to the next write, whose change is another) and
	// before the channels are told of it; a copy, as params may sit in a reused buffer.
	seedPatch := append(json.RawMessage(nil), p.Patch...)
	uniqueValues := !patch.RepeatedNames()
	durable := func() (engine.Revision, error) {
		rev, err := wait()
		if err != nil {
			s.patched.forget(p.Topic)
			return rev, err
		}
		if hist := s.topicHistory(p.Topic); hist != nil {
			hist.seed(base.Epoch, base.Revision, rev, seedPatch, uniqueValues)
		}
		return rev, err
	}
	return s.finishStoreWrite(p.Topic, p.SourceID, durable, true), nil
}

// lastPatched holds, per topic, the data state.patch last wrote: jsonpatch.Apply's
// output, compact and valid, which the store keeps as it is (StoreUpdater). A patch on a
// topic that still holds that very slice applies with ApplyValid, skipping the
// validation pass over the whole state (about half of Apply's time on 1 MiB), or with
// ApplyValidUniqueNames when the topic's history already knows that slice repeats no
// member name (a third less again for a leaf in the middle); data from anywhere else
// (state.set, the store file) goes through Apply. The slice is compared
// by identity, so an entry the store no longer holds only costs the saving; state.set,
// state.delete and a failed write drop it, so that it does not keep old data alive.
type lastPatched struct {
	mu     sync.Mutex
	data   map[string]json.RawMessage
	hits   int // patches applied with ApplyValid, for tests
	unique int // of which with ApplyValidUniqueNames, for tests
}

func (l *lastPatched) countUnique() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unique++
}

func (l *lastPatched) wrote(topic string, data json.RawMessage) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.data[topic]
	if len(last) > 0 && len(last) == len(data) && unsafe.SliceData(last) == unsafe.SliceData(data) {
		l.hits++
		return true
	}
	return false
}

func (l *lastPatched) record(topic string, data json.RawMessage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.data == nil {
		l.data = map[string]json.RawMessage{}
	}
	l.data[topic] = data
}

func (l *lastPatched) forget(topic string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.data, topic)
}

// patchError words a jsonpatch error: a failed test is the compare-and-set that lost
// (-32005 with the current revision and the test's path), anything else -32602 with the
// index of the operation.
func patchError(err error, current engine.Revision) error {
	var perr *jsonpatch.Error
	if !errors.As(err, &perr) {
		return invalidParams("patch: %v", err)
	}
	if perr.Kind == jsonpatch.TestFailed {
		return &Error{
			Code:    CodeRevisionConflict,
			Message: fmt.Sprintf("the patch's test operation %d failed at %q: the topic (at revision %s) changed there; read it again (state.get) and retry the patch", perr.Index, quoteBounded(perr.Path), current),
			Data:    map[string]any{"currentRevision": current, "path": perr.Path, "index": perr.Index},
		}
	}
	// perr's text names the operation and the fix.
	if perr.Index < 0 {
		return invalidParams("patch: %v; nothing was changed", err)
	}
	e := invalidParams("patch: %v; nothing was changed", err)
	e.Data = map[string]any{"field": "patch", "index": perr.Index}
	return e
}
