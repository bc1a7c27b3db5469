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

// handleDelete is handleSet's twin: decided on the read goroutine, so that revisions
// follow the wire's order, and made durable on the bounded group.
func (s *Server) handleDelete(ctx context.Context, req *jsonrpc2.Request, params json.RawMessage) {
	finish, err := s.beginDelete(params)
	if err != nil {
		s.reply(ctx, req, nil, err)
		return
	}
	if !s.ops.TryGo(func() error { s.answer(ctx, req, finish); return nil }) {
		s.answer(ctx, req, finish)
	}
}

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
	if p.Topic == "" {
		return nil, invalidParams("topic: is missing: want the name of the store topic to delete")
	}
	if _, err := engine.ValidateTopic(p.Topic); err != nil {
		return nil, err
	}
	var expected *engine.Revision
	if p.ExpectedRevision != nil {
		rev, err := engine.ParseRevision(*p.ExpectedRevision)
		if err != nil {
			return nil, &engine.FieldError{Field: "expectedRevision", Err: err}
		}
		expected = &rev
	}
	if t := s.openTopic(p.Topic); t != nil && t.source != SourceStore {
		return nil, errorf(CodeSourceConflict, "topic %q is open with source %q, so the host owns its state: state.delete works only on store topics", quoteBounded(p.Topic), t.source)
	}
	before := s.cfg.Store.Has(p.Topic)
	wait, err := deleter.BeginDelete(p.Topic, expected)
	if err != nil {
		return nil, err
	}
	return func(context.Context) (any, error) {
		rev, err := wait()
		if err != nil {
			return nil, err
		}
		if before { // a delete that wrote nothing has nothing to tell the channels
			event := engine.InvalidationEvent{Topic: p.Topic, Revision: rev, Epoch: s.cfg.Store.Epoch(), SourceID: p.SourceID}
			for _, sink := range s.topicSinks(p.Topic) {
				sink.Invalidate(event)
			}
		}
		return setResult{Topic: p.Topic, Revision: rev}, nil
	}, nil
}
