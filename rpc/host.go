package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/state-sync/state-sync/engine"
)

// The engine's plug-ins that reach outside the engine: snapshot providers (the host, a
// channel's owner, the embedded store) and the applier, with the decoding of the host's
// snapshots.

type snapshotParams struct {
	Topic   string `json:"topic"`
	Channel string `json:"channel,omitempty"`
}

// decodeSnapshot reads a getSnapshot result, keeping data raw. A malformed answer is a
// protocol error naming the field.
func decodeSnapshot(raw json.RawMessage) (engine.Snapshot, error) {
	var r struct {
		Revision json.RawMessage `json:"revision"`
		Epoch    json.RawMessage `json:"epoch"`
		Data     json.RawMessage `json:"data"`
	}
	if len(raw) == 0 || raw[0] != '{' {
		return engine.Snapshot{}, &engine.FieldError{Field: "getSnapshot result", Err: errors.New("want an object {revision, data}")}
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return engine.Snapshot{}, &engine.FieldError{Field: "getSnapshot result", Err: err}
	}
	var rev, epoch string
	if len(r.Revision) == 0 || r.Revision[0] != '"' || json.Unmarshal(r.Revision, &rev) != nil {
		return engine.Snapshot{}, &engine.FieldError{Field: "revision", Err: fmt.Errorf("want a canonical revision string such as \"42\", got %s", quoteBounded(string(r.Revision)))}
	}
	if len(r.Epoch) > 0 && string(r.Epoch) != "null" {
		if r.Epoch[0] != '"' || json.Unmarshal(r.Epoch, &epoch) != nil {
			return engine.Snapshot{}, &engine.FieldError{Field: "epoch", Err: errors.New("want a string")}
		}
	}
	if len(r.Data) == 0 {
		return engine.Snapshot{}, &engine.FieldError{Field: "data", Err: errors.New("is missing: send the state (null is a valid state)")}
	}
	return engine.Snapshot{Revision: engine.Revision(rev), Epoch: epoch, Data: r.Data}, nil
}

type hostProvider struct {
	s     *Server
	topic string
}

func (p hostProvider) GetSnapshot(ctx context.Context, _ engine.SnapshotRequest) (engine.Snapshot, error) {
	raw, err := p.s.call(ctx, "getSnapshot", snapshotParams{Topic: p.topic})
	if err != nil {
		return engine.Snapshot{}, err
	}
	return decodeSnapshot(raw)
}

type channelProvider struct {
	s       *Server
	topic   string
	channel string
}

func (p channelProvider) GetSnapshot(ctx context.Context, _ engine.SnapshotRequest) (engine.Snapshot, error) {
	raw, err := p.s.call(ctx, "getSnapshot", snapshotParams{Topic: p.topic, Channel: p.channel})
	if err != nil {
		return engine.Snapshot{}, err
	}
	return decodeSnapshot(raw)
}

type storeProvider struct {
	store Store
	topic string
}

func (p storeProvider) GetSnapshot(context.Context, engine.SnapshotRequest) (engine.Snapshot, error) {
	return p.store.Get(p.topic)
}

type applyParams struct {
	Channel  string          `json:"channel"`
	Topic    string          `json:"topic"`
	Revision engine.Revision `json:"revision"`
	Epoch    string          `json:"epoch,omitempty"`
	Deleted  bool            `json:"deleted,omitempty"` // state.delete: Data is null
	Data     json.RawMessage `json:"data"`
}

// deletedData is the data of a deleted topic's apply: null, for appliers that predate
// state.delete; "deleted" tells it from a topic set to null.
var deletedData = json.RawMessage("null")

type applier struct {
	s  *Server
	ch *channel
}

func (a applier) Apply(ctx context.Context, snapshot engine.Snapshot) error {
	p := applyParams{Channel: a.ch.name, Topic: a.ch.topic.name, Revision: snapshot.Revision, Epoch: snapshot.Epoch, Data: snapshot.Data}
	if snapshot.Deleted {
		p.Deleted, p.Data = true, deletedData
	}
	_, err := a.s.call(ctx, "apply", p)
	return err
}
