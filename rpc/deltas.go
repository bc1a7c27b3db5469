package rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/internal/jsonpatch"
)

// Deltas (issue 15): an apply may carry an RFC 6902 patch from the revision the channel
// last applied instead of the data, and a channel may select paths of the state. The
// snapshot stays the source of truth: a patch is only ever computed between two
// revisions the sidecar holds the data of, and only sent to a channel whose last applied
// revision is its base; the window checks that base again, and answers -32011 when it does
// not hold it, which makes the sidecar send the full data at once.

const (
	// MinSavingsRatio is "meaningfully smaller": a patch is sent instead of the data only
	// when it is at most this share of the data's size.
	MinSavingsRatio = 0.5
	// DefaultDeltaHistoryBytes bounds each topic's history of data, and again its cache of
	// computed patches and projections.
	DefaultDeltaHistoryBytes = 4 << 20
	// MaxPaths is the most JSON Pointers one channel may select.
	MaxPaths = 64
)

// deltaCapability is initialize's capabilities.deltas.
type deltaCapability struct {
	Version         int     `json:"version"`
	HistoryBytes    int     `json:"historyBytes"`
	MinSavingsRatio float64 `json:"minSavingsRatio"`
}

func (s *Server) deltaCapability() *deltaCapability {
	return &deltaCapability{Version: 1, HistoryBytes: s.historyBytes(), MinSavingsRatio: MinSavingsRatio}
}

// historyBytes is Config.DeltaHistoryBytes with its default; 0 when deltas are off.
func (s *Server) historyBytes() int {
	switch n := s.cfg.DeltaHistoryBytes; {
	case n < 0:
		return 0
	case n == 0:
		return DefaultDeltaHistoryBytes
	default:
		return n
	}
}

// deltaOptions are a channel's options.deltas and options.paths, checked.
type deltaOptions struct {
	deltas   bool
	paths    []string // sorted, no duplicates; nil: the whole document
	pathsKey string   // paths as one string, to share projections between channels
}

// parseDeltaOptions checks options.deltas and options.paths of channel.open.
func parseDeltaOptions(o *openOptions) (deltaOptions, error) {
	var d deltaOptions
	if o == nil {
		return d, nil
	}
	d.deltas = o.Deltas != nil && *o.Deltas
	if o.Paths == nil {
		return d, nil
	}
	paths := *o.Paths
	if len(paths) == 0 || len(paths) > MaxPaths {
		return d, invalidParams("options.paths: got %d pointers, want 1 to %d JSON Pointers such as \"/settings/theme\" (leave paths out to sync the whole state)", len(paths), MaxPaths)
	}
	seen := make(map[string]bool, len(paths))
	for i, p := range paths {
		if p == "" {
			return d, invalidParams("options.paths[%d]: \"\" is the whole document: leave paths out to sync the whole state", i)
		}
		if p[0] != '/' {
			return d, invalidParams("options.paths[%d]: %q is not a JSON Pointer (RFC 6901): write it as \"/%s\", with ~0 for ~ and ~1 for / in a member name", i, quoteBounded(p), quoteBounded(p))
		}
		if _, err := jsonpatch.ParsePointer(p); err != nil {
			return d, invalidParams("options.paths[%d]: %q is not a JSON Pointer (RFC 6901): %v", i, quoteBounded(p), err)
		}
		if seen[p] {
			return d, invalidParams("options.paths[%d]: %q is listed twice: list each pointer once", i, quoteBounded(p))
		}
		seen[p] = true
	}
	d.paths = slices.Sorted(func(yield func(string) bool) {
		for _, p := range paths {
			if !yield(p) {
				return
			}
		}
	})
	key, _ := json.Marshal(d.paths)
	d.pathsKey = string(key)
	return d, nil
}

// active reports whether the channel needs the delta applier at all.
func (d deltaOptions) active() bool { return d.deltas || d.paths != nil }

// history is what one topic's channels share: the data of recent revisions, by
// (epoch, revision), and the patches and projections computed from them, each computed
// once. Both are bounded in bytes (limit each), dropping the oldest first. For source
// "channel" every channel has its own, since its owner answers for it alone.
type history struct {
	limit int

	mu      sync.Mutex
	data    map[revKey]*histEntry
	order   []revKey // oldest first
	bytes   int
	derived map[derivedKey]*derivedEntry
	dorder  []derivedKey
	dbytes  int

	// patched is the latest state.patch whose values repeat no member name: the data of
	// its target then repeats a name only if its base's does (jsonpatch.Patch.RepeatedNames),
	// so repeated answers for the target from the base's check, not a scan of the whole
	// state (1.5–1.7 ms per MiB, BenchmarkRepeatedNames1MiB). Only the latest: the one
	// its channels are about to get.
	patched struct{ base, target revKey }

	diffs atomic.Uint64 // patches computed, for tests
	scans atomic.Uint64 // RepeatedNames scans of whole data, for tests
}

type revKey struct {
	epoch string
	rev   engine.Revision
}

type histEntry struct {
	data json.RawMessage // nil: two different data were seen at this revision, so it is never a base or a target
	size int             // what it counts against limit

	check   sync.Once
	repeats bool        // data has a member name twice (jsonpatch.RepeatedNames), once checked
	checked atomic.Bool // repeats is set: uniqueNames reads it without running the check
}

// derivedKey names a patch (base set) or a projection (base empty) of the data of
// target, for the channels selecting pathsKey ("" for the whole document).
type derivedKey struct {
	pathsKey string
	epoch    string
	base     engine.Revision
	target   engine.Revision
}

type derivedEntry struct {
	once sync.Once
	out  json.RawMessage
	err  error
}

func newHistory(limit int) *history {
	return &history{limit: limit, data: map[revKey]*histEntry{}, derived: map[derivedKey]*derivedEntry{}}
}

// sameBytes compares data, first by address: the channels of a topic mostly get the one
// slice their shared snapshot came in.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || unsafe.SliceData(a) == unsafe.SliceData(b) || bytes.Equal(a, b))
}

// remember records a snapshot's data, and reports whether the history now holds exactly
// that data at its revision (what a patch to or from it needs).
func (h *history) remember(snapshot engine.Snapshot) bool {
	if h.limit <= 0 || len(snapshot.Data) > h.limit || snapshot.Deleted {
		return false
	}
	key := revKey{snapshot.Epoch, snapshot.Revision}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.data[key]; ok {
		if e.data == nil || !sameBytes(e.data, snapshot.Data) {
			// A source that served two states under one revision: neither is trusted as
			// a base or a target from now on, so every channel gets full data.
			e.data = nil
			return false
		}
		return true
	}
	h.data[key] = &histEntry{data: snapshot.Data, size: len(snapshot.Data)}
	h.order = append(h.order, key)
	h.bytes += len(snapshot.Data)
	for h.bytes > h.limit && len(h.order) > 0 {
		old := h.order[0]
		h.order = h.order[1:]
		h.bytes -= h.data[old].size
		delete(h.data, old)
	}
	_, ok := h.data[key]
	return ok
}

// get returns the data held at key, nil when none.
func (h *history) get(key revKey) json.RawMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.data[key]; e != nil {
		return e.data
	}
	return nil
}

// derive returns the value of key, computing it with compute only once for every caller.
func (h *history) derive(key derivedKey, compute func() (json.RawMessage, error)) (json.RawMessage, error) {
	h.mu.Lock()
	e := h.derived[key]
	if e == nil {
		e = &derivedEntry{}
		h.derived[key] = e
		h.dorder = append(h.dorder, key)
	}
	h.mu.Unlock()
	computed := false
	e.once.Do(func() {
		computed = true
		e.out, e.err = compute()
	})
	if computed {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.derived[key] != e {
			return e.out, e.err // dropped while it was computed: it counts no more
		}
		h.dbytes += len(e.out)
		for h.dbytes > h.limit && len(h.dorder) > 1 {
			old := h.dorder[0]
			h.dorder = h.dorder[1:]
			if oe := h.derived[old]; oe != nil {
				h.dbytes -= len(oe.out)
			}
			delete(h.derived, old)
		}
	}
	return e.out, e.err
}

// seed records a patch from base to target known without a diff: the one state.patch
// applied to the data at base to make target. Channels at base then get it as it is,
// and the topic never pays the diff of the whole state for a change it was told.
// uniqueValues says that no value of the patch repeats a member name.
func (h *history) seed(epoch string, base, target engine.Revision, patch json.RawMessage, uniqueValues bool) {
	if uniqueValues {
		h.mu.Lock()
		h.patched.base, h.patched.target = revKey{epoch, base}, revKey{epoch, target}
		h.mu.Unlock()
	}
	h.derive(derivedKey{epoch: epoch, base: base, target: target}, func() (json.RawMessage, error) { return patch, nil })
}

// projection returns the projection of snapshot's data on opts.paths, shared with
// every channel that selects the same paths when the history holds the data.
func (h *history) projection(snapshot engine.Snapshot, opts deltaOptions, held bool) (json.RawMessage, error) {
	project := func() (json.RawMessage, error) { return jsonpatch.Project(snapshot.Data, opts.paths) }
	if !held {
		return project()
	}
	return h.derive(derivedKey{pathsKey: opts.pathsKey, epoch: snapshot.Epoch, target: snapshot.Revision}, project)
}

// repeated reports whether the data held at key has a member name twice, checked once
// per revision; true when the history does not hold it. Such data goes in full: Diff
// needs unique names, and a window reads a repeated name as its last member, so a
// patch there could leave it holding other data than the topic's.
func (h *history) repeated(key revKey) bool {
	h.mu.Lock()
	e := h.data[key]
	var data json.RawMessage
	if e != nil {
		data = e.data
	}
	base, patched := h.patched.base, h.patched.target == key
	h.mu.Unlock()
	if data == nil {
		return true
	}
	e.check.Do(func() {
		defer e.checked.Store(true)
		// The base's data is what the patch applied to: the history holds one data per
		// revision (remember).
		if patched && h.get(base) != nil && !h.repeated(base) {
			return
		}
		h.scans.Add(1)
		e.repeats = jsonpatch.RepeatedNames(data)
	})
	return e.repeats
}

// uniqueNames reports whether the history holds this very slice as the data at key and
// has already found that it repeats no member name (a channel's patch asked). It never
// runs the check: state.patch asks it under the store's lock, where a scan of the whole
// state would cost more than the answer saves.
func (h *history) uniqueNames(key revKey, data json.RawMessage) bool {
	h.mu.Lock()
	e := h.data[key]
	var held json.RawMessage
	if e != nil {
		held = e.data
	}
	h.mu.Unlock()
	return len(held) > 0 && len(held) == len(data) && unsafe.SliceData(held) == unsafe.SliceData(data) &&
		e.checked.Load() && !e.repeats
}

// patch returns the patch from base to target for the channels selecting opts.paths,
// computed once; nil when the history no longer holds base, or either has a member name
// twice.
func (h *history) patch(opts deltaOptions, epoch string, base, target engine.Revision, targetData json.RawMessage) (json.RawMessage, error) {
	baseData := h.get(revKey{epoch, base})
	if baseData == nil || h.repeated(revKey{epoch, base}) || h.repeated(revKey{epoch, target}) {
		return nil, nil
	}
	return h.derive(derivedKey{pathsKey: opts.pathsKey, epoch: epoch, base: base, target: target}, func() (json.RawMessage, error) {
		from := baseData
		if opts.paths != nil {
			var err error
			// The base's projection: from the cache, as the base's own apply left it.
			if from, err = h.projection(engine.Snapshot{Revision: base, Epoch: epoch, Data: baseData}, opts, true); err != nil {
				return nil, err
			}
		}
		h.diffs.Add(1)
		return jsonpatch.Diff(from, targetData)
	})
}

// channelDeltas is the delta state of one channel that opted in (deltas or paths). It is
// used by the channel's applier only, which the engine calls from one goroutine at a
// time; the counters are read by channel.status.
type channelDeltas struct {
	opts deltaOptions
	hist *history // nil: deltas off (--delta-history-bytes 0); paths still project

	// held is what the window holds, as far as the sidecar knows: valid only after an
	// apply it answered with success.
	held heldState

	deltas     atomic.Uint64 // applies sent as a patch and taken
	rejections atomic.Uint64 // -32011 answers
}

type heldState struct {
	valid bool
	epoch string
	// sent is the revision the window last applied: what a patch's baseRevision must be.
	sent engine.Revision
	// seen is the latest revision whose projection equals what the window holds (sent,
	// for a channel without paths): the newest base the history may still have.
	seen engine.Revision
	// sum identifies the projection the window holds (paths only).
	sum [sha256.Size]byte
}

// deltaApplyParams is an apply that carries a patch instead of data.
type deltaApplyParams struct {
	Channel      string          `json:"channel"`
	Topic        string          `json:"topic"`
	Revision     engine.Revision `json:"revision"`
	Epoch        string          `json:"epoch,omitempty"`
	BaseRevision engine.Revision `json:"baseRevision"`
	Patch        json.RawMessage `json:"patch"`
}

// isDeltaRejected reports whether the window answered -32011: it did not apply the patch.
func isDeltaRejected(err error) bool {
	var rpcErr *Error
	return errors.As(err, &rpcErr) && rpcErr.Code == CodeDeltaRejected
}

// apply sends snapshot to the window: nothing when the channel's projection did not
// change, a patch when the rules allow one, the full data otherwise.
func (d *channelDeltas) apply(ctx context.Context, a applier, snapshot engine.Snapshot) error {
	if snapshot.Deleted {
		d.held = heldState{}
		return a.send(ctx, snapshot, nil)
	}
	// Every channel that opted in records the data: a delta needs its base and target
	// there, and a projection computed from data the history holds is shared.
	held := d.hist != nil && d.hist.remember(snapshot)
	data := snapshot.Data
	var sum [sha256.Size]byte
	if d.opts.paths != nil {
		var err error
		if data, err = d.projectionOf(snapshot, held); err != nil {
			return err
		}
		sum = sha256.Sum256(data)
		if d.held.valid && d.held.epoch == snapshot.Epoch && d.held.sum == sum {
			// The window already holds this projection: it is now the projection at
			// snapshot's revision, which the engine takes as the channel's localRevision.
			d.held.seen = snapshot.Revision
			return nil
		}
	}
	if held && d.opts.deltas {
		if patch := d.patchFor(snapshot, data); patch != nil {
			base := d.held.sent
			err := a.sendPatch(ctx, snapshot, base, patch)
			if err == nil {
				d.deltas.Add(1)
				d.held = heldState{valid: true, epoch: snapshot.Epoch, sent: snapshot.Revision, seen: snapshot.Revision, sum: sum}
				return nil
			}
			if !isDeltaRejected(err) {
				d.held = heldState{}
				return err
			}
			// The window does not hold the base (or could not apply the patch): it applied
			// nothing, so the same revision goes again in full, at once.
			d.rejections.Add(1)
			a.s.log.Debug("delta rejected, sending full data", "channel", a.ch.name, "revision", snapshot.Revision, "baseRevision", base, "err", err)
		}
	}
	d.held = heldState{}
	if err := a.send(ctx, snapshot, data); err != nil {
		return err
	}
	d.held = heldState{valid: true, epoch: snapshot.Epoch, sent: snapshot.Revision, seen: snapshot.Revision, sum: sum}
	return nil
}

func (d *channelDeltas) projectionOf(snapshot engine.Snapshot, held bool) (json.RawMessage, error) {
	if d.hist == nil {
		return jsonpatch.Project(snapshot.Data, d.opts.paths)
	}
	data, err := d.hist.projection(snapshot, d.opts, held)
	if err != nil {
		return nil, fmt.Errorf("projecting the state on options.paths: %w", err)
	}
	return data, nil
}

// patchFor returns the patch to send for snapshot (whose data, or projection, is data),
// or nil when the rules say full data: no base the window is known to hold in this
// epoch, a base the history no longer has, or a patch not meaningfully smaller.
func (d *channelDeltas) patchFor(snapshot engine.Snapshot, data json.RawMessage) json.RawMessage {
	h := d.held
	if !h.valid || h.epoch != snapshot.Epoch || snapshot.Revision.Compare(h.sent) <= 0 {
		return nil
	}
	// The projection at seen equals the one at sent, and seen is newer, so more likely
	// still in the history: the patch from either is the same.
	var patch json.RawMessage
	for _, base := range []engine.Revision{h.seen, h.sent} {
		p, err := d.hist.patch(d.opts, snapshot.Epoch, base, snapshot.Revision, data)
		if err != nil {
			return nil
		}
		if p != nil {
			patch = p
			break
		}
		if h.seen == h.sent {
			break
		}
	}
	if patch == nil || float64(len(patch)) > MinSavingsRatio*float64(len(data)) {
		return nil
	}
	return patch
}

// historyFor returns the history a channel of t shares: the topic's, or for source
// "channel" its own. Called with Server.mu held (from add).
func (s *Server) historyFor(t *topic, source Source) *history {
	limit := s.historyBytes()
	if limit == 0 {
		return nil
	}
	if source == SourceChannel {
		return newHistory(limit)
	}
	if t.hist == nil {
		t.hist = newHistory(limit)
	}
	return t.hist
}

// counters are a channel's engine.Counters with its delta counters, for channel.status.
type counters struct {
	engine.Counters
	// Deltas counts applies sent as a patch that the window took.
	Deltas uint64 `json:"deltas"`
	// DeltaRejections counts -32011 answers, each followed by the full data at once.
	DeltaRejections uint64 `json:"deltaRejections"`
}

func countersOf(ch *channel, c engine.Counters) counters {
	out := counters{Counters: c}
	if d := ch.deltas; d != nil {
		out.Deltas, out.DeltaRejections = d.deltas.Load(), d.rejections.Load()
	}
	return out
}

// topicHistory returns the history of the open topic name, nil when it has none.
func (s *Server) topicHistory(name string) *history {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.topics[name]; t != nil {
		return t.hist
	}
	return nil
}
