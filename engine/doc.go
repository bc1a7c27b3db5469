// Package engine is the state-sync protocol engine: revisions, invalidation events and
// the per-channel sync engine that keeps one window's copy of a topic up to date.
//
// The protocol in one paragraph: an event is an invalidation ({topic, revision}), never
// state; a snapshot ({revision, data}) pulled from a provider is the only source of state;
// a channel subscribes first and refreshes second, so a late joiner catches up; it applies
// a snapshot only when it is newer than what it has; bursts of events coalesce into at
// most one refresh in flight plus one trailing refresh; nothing is applied after Stop
// returns; garbage input is reported with phase "protocol" and ignored.
//
// The package depends on no transport. The sidecar's rpc package plugs JSON-RPC calls in
// as SnapshotProvider and Applier; a Go host can embed the engine directly.
package engine
