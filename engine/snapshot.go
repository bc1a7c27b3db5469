package engine

import (
	"context"
	"encoding/json"
)

// Snapshot is the state of a topic at a revision. Data is opaque JSON, passed through
// byte for byte. A snapshot with revision "0" and no Data means "the source has no state
// yet": nothing is applied (a window is never handed a null it did not ask for).
type Snapshot struct {
	Revision Revision        `json:"revision"`
	Epoch    string          `json:"epoch,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
	// Deleted: the source deleted the topic at Revision (state.delete); Data is empty. It
	// is applied like any newer snapshot, so that windows learn the topic is unset.
	Deleted bool `json:"deleted,omitempty"`
}

// Empty reports whether the snapshot says the source has no state yet.
func (s Snapshot) Empty() bool { return s.Revision == ZeroRevision && len(s.Data) == 0 }

// SnapshotRequest tells a provider what the caller needs, so that a shared provider can
// serve many channels from one fetch. A provider with no cache may ignore it.
type SnapshotRequest struct {
	// MinRevision is the highest revision the channel was told about; a cached snapshot
	// at least this new (in Epoch) is good enough.
	MinRevision Revision
	// Epoch is the epoch of the event behind MinRevision, "" when unknown.
	Epoch string
	// Fresh asks for a snapshot fetched after this call began: start, explicit refresh
	// and resync need it, since they run without an event saying what is current.
	Fresh bool
}

// SnapshotProvider answers with the current snapshot of one topic.
type SnapshotProvider interface {
	GetSnapshot(ctx context.Context, req SnapshotRequest) (Snapshot, error)
}

// Applier puts a snapshot into the window's state. An error means "not applied": the
// channel's local revision does not advance.
type Applier interface {
	Apply(ctx context.Context, snapshot Snapshot) error
}

// Sink receives the events of one channel. Channel implements it; a Subscriber hands
// events to it.
type Sink interface {
	// InvalidateRaw validates a payload as it came off a transport, then handles it.
	InvalidateRaw(payload json.RawMessage)
	// Invalidate handles an event that was already validated.
	Invalidate(event InvalidationEvent)
}

// Subscriber connects a channel to a source of invalidation events. Subscribe must not
// return before events flow to sink: the channel refreshes right after, and an event
// lost in between would leave the window stale.
type Subscriber interface {
	Subscribe(ctx context.Context, sink Sink) (unsubscribe func(), err error)
}

// ProviderFunc adapts a function to SnapshotProvider.
type ProviderFunc func(ctx context.Context, req SnapshotRequest) (Snapshot, error)

func (f ProviderFunc) GetSnapshot(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
	return f(ctx, req)
}

// ApplierFunc adapts a function to Applier.
type ApplierFunc func(ctx context.Context, snapshot Snapshot) error

func (f ApplierFunc) Apply(ctx context.Context, snapshot Snapshot) error { return f(ctx, snapshot) }
