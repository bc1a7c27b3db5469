package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/state-sync/state-sync/engine"
	"github.com/state-sync/state-sync/internal/jsonscan"
	"github.com/state-sync/state-sync/internal/strictjson"
)

// The engine's plug-ins that reach outside the engine: snapshot providers (the host, a
// channel's owner, the embedded store) and the applier, with the decoding of the host's
// snapshots.

type snapshotParams struct {
	Topic   string `json:"topic"`
	Channel string `json:"channel,omitempty"`
}

// decodeSnapshot reads a getSnapshot result, keeping data raw: data is a slice of raw,
// not a copy. A malformed answer is a *engine.FieldError naming the member, which the
// engine reports with phase getSnapshot.
//
// raw is the result member of a frame the read loop has validated, so the usual answer
// ({"revision":"42","data":…}, any member order) is read by splitSnapshot in one pass
// that skips over data without decoding it. Anything else (escapes, case variants of the
// names, repeats) is read with strictjson, as every message is: an answer with
// "revision" twice, or "Revision" beside it, has no one reading, so it is refused rather
// than guessed at.
func decodeSnapshot(raw json.RawMessage) (engine.Snapshot, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return engine.Snapshot{}, &engine.FieldError{Field: "getSnapshot result", Err: fmt.Errorf("want an object {revision, data}, got %s", quoteBounded(string(raw)))}
	}
	var r snapshotResult
	if !splitSnapshot(raw, &r) {
		r = snapshotResult{}
		if err := strictjson.Decode(raw, &r); err != nil {
			return engine.Snapshot{}, strictFieldError("getSnapshot result", err)
		}
	}
	switch {
	case len(r.Revision) == 0 || string(r.Revision) == "null":
		return engine.Snapshot{}, &engine.FieldError{Field: "revision", Err: errors.New("is missing: answer {revision, data} with the state's revision as a string such as \"42\"")}
	case r.Revision[0] != '"':
		return engine.Snapshot{}, &engine.FieldError{Field: "revision", Err: fmt.Errorf("must be a string such as \"42\", got %s", quoteBounded(string(r.Revision)))}
	}
	rev, ok := plainString(r.Revision)
	if !ok {
		if err := strictjson.Decode(r.Revision, &rev); err != nil {
			return engine.Snapshot{}, strictFieldError("revision", err)
		}
	}
	var epoch string
	if len(r.Epoch) > 0 && string(r.Epoch) != "null" {
		if r.Epoch[0] != '"' {
			return engine.Snapshot{}, &engine.FieldError{Field: "epoch", Err: fmt.Errorf("must be a string, got %s", quoteBounded(string(r.Epoch)))}
		}
		if epoch, ok = plainString(r.Epoch); !ok {
			if err := strictjson.Decode(r.Epoch, &epoch); err != nil {
				return engine.Snapshot{}, strictFieldError("epoch", err)
			}
		}
	}
	if len(r.Data) == 0 {
		return engine.Snapshot{}, &engine.FieldError{Field: "data", Err: errors.New("is missing: send the state (null is a valid state)")}
	}
	return engine.Snapshot{Revision: engine.Revision(rev), Epoch: epoch, Data: r.Data}, nil
}

type snapshotResult struct {
	Revision json.RawMessage `json:"revision"`
	Epoch    json.RawMessage `json:"epoch"`
	Data     json.RawMessage `json:"data"`
}

// splitSnapshot slices the members of a valid JSON object into r without copying, as
// json.Unmarshal would fill it, and reports false (r untouched or partly filled, to be
// overwritten) when it cannot be sure of that: a member name with an escape, a name that
// matches one of r's only case-insensitively, a repeated name, or input that is not
// well formed where it looks.
func splitSnapshot(b []byte, r *snapshotResult) bool {
	var seen [3]bool
	i := jsonscan.SkipSpace(b, 1)
	for i < len(b) && b[i] != '}' {
		if b[i] != '"' {
			return false
		}
		end := i + 1
		for end < len(b) && b[end] != '"' && b[end] != '\\' {
			end++
		}
		if end >= len(b) || b[end] != '"' {
			return false
		}
		name := b[i+1 : end]
		i = jsonscan.SkipSpace(b, end+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = jsonscan.SkipSpace(b, i+1)
		valueEnd := jsonscan.SkipValue(b, i)
		if valueEnd <= i || valueEnd >= len(b) {
			return false
		}
		var slot *json.RawMessage
		k := -1
		switch string(name) {
		case "revision":
			slot, k = &r.Revision, 0
		case "epoch":
			slot, k = &r.Epoch, 1
		case "data":
			slot, k = &r.Data, 2
		default:
			if bytes.EqualFold(name, []byte("revision")) || bytes.EqualFold(name, []byte("epoch")) || bytes.EqualFold(name, []byte("data")) {
				return false
			}
		}
		if k >= 0 {
			if seen[k] {
				return false
			}
			seen[k] = true
			*slot = b[i:valueEnd]
		}
		i = jsonscan.SkipSpace(b, valueEnd)
		if i < len(b) && b[i] == ',' {
			i = jsonscan.SkipSpace(b, i+1)
		}
	}
	return i == len(b)-1
}

// plainString returns the content of a JSON string with no escapes and only printable
// ASCII, which is the string itself; ok is false for anything else.
func plainString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(raw[1 : len(raw)-1]), true
}

// strictFieldError turns a strictjson refusal into a *engine.FieldError naming the
// member: its path when it has one, else field.
func strictFieldError(field string, err error) *engine.FieldError {
	var serr *strictjson.Error
	if !errors.As(err, &serr) || serr.Path == "" {
		return &engine.FieldError{Field: field, Err: err}
	}
	msg := strings.TrimPrefix(serr.Error(), serr.Path+": ")
	return &engine.FieldError{Field: serr.Path, Err: &strictCause{msg: msg, err: serr}}
}

// strictCause is a strictjson error without its path, which FieldError puts in front.
type strictCause struct {
	msg string
	err *strictjson.Error
}

func (e *strictCause) Error() string { return e.msg }
func (e *strictCause) Unwrap() error { return e.err }

type hostProvider struct {
	s       *Server
	topic   string
	timeout string // names the call timeout, see Server.call
}

func (p hostProvider) GetSnapshot(ctx context.Context, _ engine.SnapshotRequest) (engine.Snapshot, error) {
	raw, err := p.s.call(ctx, "getSnapshot", snapshotParams{Topic: p.topic}, p.timeout)
	if err != nil {
		return engine.Snapshot{}, err
	}
	return decodeSnapshot(raw)
}

type channelProvider struct {
	s       *Server
	topic   string
	channel string
	timeout string // names the call timeout, see Server.call
}

func (p channelProvider) GetSnapshot(ctx context.Context, _ engine.SnapshotRequest) (engine.Snapshot, error) {
	raw, err := p.s.call(ctx, "getSnapshot", snapshotParams{Topic: p.topic, Channel: p.channel}, p.timeout)
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
	s       *Server
	ch      *channel
	timeout string         // names the call timeout, see Server.call
	d       *channelDeltas // nil: the channel takes full data, as before deltas (see deltas.go)
}

func (a applier) Apply(ctx context.Context, snapshot engine.Snapshot) error {
	if a.d != nil {
		return a.d.apply(ctx, a, snapshot)
	}
	return a.send(ctx, snapshot, snapshot.Data)
}

// send is a full apply of snapshot carrying data (snapshot's, or its projection).
func (a applier) send(ctx context.Context, snapshot engine.Snapshot, data json.RawMessage) error {
	p := applyParams{Channel: a.ch.name, Topic: a.ch.topic.name, Revision: snapshot.Revision, Epoch: snapshot.Epoch, Data: data}
	if snapshot.Deleted {
		p.Deleted, p.Data = true, deletedData
	}
	_, err := a.s.call(ctx, "apply", p, a.timeout)
	return err
}

// sendPatch is an apply carrying a patch from base instead of data.
func (a applier) sendPatch(ctx context.Context, snapshot engine.Snapshot, base engine.Revision, patch json.RawMessage) error {
	p := deltaApplyParams{Channel: a.ch.name, Topic: a.ch.topic.name, Revision: snapshot.Revision, Epoch: snapshot.Epoch, BaseRevision: base, Patch: patch}
	_, err := a.s.call(ctx, "apply", p, a.timeout)
	return err
}
