package rpc

import (
	"context"
	"encoding/json"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/state-sync/state-sync/engine"
)

// StoreDeleter is the part of a Store that state.delete needs. A store that lacks it
// answers state.delete with -32601 naming the store; the memory and file stores have it.
type StoreDeleter interface {
	// BeginDelete returns the topic to unset as Begin writes: decided at once, in call
	// order, with expected a compare-and-set; wait returns once it is durable. The
	// deletion is the topic's next revision, which Get then answers with Deleted set and
	// no data; deleting a topic with no data writes nothing and returns its revision.
	BeginDelete(topic string, expected *engine.Revision) (wait func() (engine.Revision, error), err error)
}

type deleteParams struct {
	Topic            string  `json:"topic"`
	ExpectedRevision *string `json:"expectedRevision"`
	SourceID         string  `json:"sourceId"`
}

// beginDelete checks a state.delete and begins it, as beginSet does a state.set.
func (s *Server) beginDelete(params json.RawMessage) (finish func(context.Context) (any, error), err error) {
	if s.cfg.Store == nil {
		return nil, errorf(CodeSourceConflict, "the embedded store is not available in this sidecar")
	}
	deleter, ok := s.cfg.Store.(StoreDeleter)
	if !ok {
		return nil, errorf(jsonrpc2.CodeMethodNotFound, "state.delete is not supported by the %s store of this sidecar: write a value that means empty with state.set instead", s.cfg.Store.Kind())
	}
	var p deleteParams
	if err := decodeStrict(params, &p); err != nil {
		return nil, err
	}
	expected, err := s.storeWriteTarget("state.delete", p.Topic, p.ExpectedRevision)
	if err != nil {
		return nil, err
	}
	changed := s.cfg.Store.Has(p.Topic) // a delete that writes nothing has nothing to tell the channels
	wait, err := deleter.BeginDelete(p.Topic, expected)
	if err != nil {
		return nil, err
	}
	s.patched.forget(p.Topic)
	return s.finishStoreWrite(p.Topic, p.SourceID, wait, changed), nil
}
