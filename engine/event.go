package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/state-sync/state-sync/internal/strictjson"
)

// InvalidationEvent says "topic changed, now at revision"; it never carries state.
// SourceID and TimestampMs are for observability only; ordering is by Revision. Epoch,
// when set, names the life of the source that produced Revision.
type InvalidationEvent struct {
	Topic       string   `json:"topic"`
	Revision    Revision `json:"revision"`
	Epoch       string   `json:"epoch,omitempty"`
	SourceID    string   `json:"sourceId,omitempty"`
	TimestampMs *float64 `json:"timestampMs,omitempty"`
}

// FieldError is a protocol violation in one field of a payload. The rpc layer answers
// it with JSON-RPC -32602 naming Field; the engine reports it with phase "protocol".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// rawEvent keeps every field raw so that each one is type-checked on its own and the
// error names the field; unknown fields are ignored for forward compatibility.
type rawEvent struct {
	Topic       json.RawMessage `json:"topic"`
	Revision    json.RawMessage `json:"revision"`
	Epoch       json.RawMessage `json:"epoch"`
	SourceID    json.RawMessage `json:"sourceId"`
	TimestampMs json.RawMessage `json:"timestampMs"`
}

// ParseEvent validates an invalidation payload as it came off a transport. Garbage of any
// shape returns a *FieldError (or a plain error for a payload that is not a JSON object);
// it never panics.
func ParseEvent(payload []byte) (InvalidationEvent, error) {
	if ev, ok := parseEventFast(payload); ok {
		return ev, nil
	}
	return parseEventSlow(payload)
}

// parseEventSlow is ParseEvent's general path: any payload, every error worded.
func parseEventSlow(payload []byte) (InvalidationEvent, error) {
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return InvalidationEvent{}, fieldErrorf("event", "want a JSON object {topic, revision}, got %s", describeJSON(trimmed))
	}
	var raw rawEvent
	// strictjson: the fast path gives up on case twins, escaped and repeated names, and
	// this path must refuse them, not read them as encoding/json would ("Topic" for
	// "topic", the last of two), where a relay reading with JSON.parse saw another event.
	if err := strictjson.Decode(trimmed, &raw); err != nil {
		return InvalidationEvent{}, strictFieldError(err)
	}
	var ev InvalidationEvent
	topic, err := requiredString("topic", raw.Topic)
	if err != nil {
		return InvalidationEvent{}, err
	}
	if ev.Topic, err = ValidateTopic(topic); err != nil {
		return InvalidationEvent{}, err
	}
	rev, err := requiredString("revision", raw.Revision)
	if err != nil {
		return InvalidationEvent{}, err
	}
	if ev.Revision, err = ParseRevision(rev); err != nil {
		return InvalidationEvent{}, &FieldError{Field: "revision", Err: err}
	}
	if ev.Epoch, err = optionalString("epoch", raw.Epoch); err != nil {
		return InvalidationEvent{}, err
	}
	if ev.SourceID, err = optionalString("sourceId", raw.SourceID); err != nil {
		return InvalidationEvent{}, err
	}
	if isPresent(raw.TimestampMs) {
		var ts float64
		if raw.TimestampMs[0] == '"' || json.Unmarshal(raw.TimestampMs, &ts) != nil {
			return InvalidationEvent{}, fieldErrorf("timestampMs", "want a number (epoch milliseconds), got %s", describeJSON(raw.TimestampMs))
		}
		ev.TimestampMs = &ts
	}
	return ev, nil
}

func isPresent(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

func requiredString(field string, raw json.RawMessage) (string, error) {
	if !isPresent(raw) {
		return "", fieldErrorf(field, "is missing")
	}
	return optionalString(field, raw)
}

func optionalString(field string, raw json.RawMessage) (string, error) {
	if !isPresent(raw) {
		return "", nil
	}
	var s string
	if raw[0] != '"' {
		return "", fieldErrorf(field, "want a string, got %s", describeJSON(raw))
	}
	if err := strictjson.Decode(raw, &s); err != nil {
		// A lone surrogate escape: no character, and read as U+FFFD by encoding/json, so
		// "t\ud800" and "t\udbff" would name the same topic.
		return "", &FieldError{Field: field, Err: err}
	}
	return s, nil
}

// strictFieldError words a strictjson refusal of the event as a *FieldError naming the
// member ("event" for the object itself).
func strictFieldError(err error) *FieldError {
	var serr *strictjson.Error
	if !errors.As(err, &serr) {
		return fieldErrorf("event", "%v", err)
	}
	if serr.Kind == strictjson.Syntax {
		return fieldErrorf("event", "not valid JSON: %w", serr.Err)
	}
	if serr.Path == "" {
		return &FieldError{Field: "event", Err: serr}
	}
	return &FieldError{Field: serr.Path, Err: pathless{serr}}
}

// pathless is a strictjson error told without its path, which FieldError puts in front.
type pathless struct{ err *strictjson.Error }

func (p pathless) Error() string { return strings.TrimPrefix(p.err.Error(), p.err.Path+": ") }
func (p pathless) Unwrap() error { return p.err }

// describeJSON names the kind of a JSON value and shows a bounded prefix of it.
func describeJSON(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	kind := "a JSON value"
	switch raw[0] {
	case '{':
		kind = "an object"
	case '[':
		kind = "an array"
	case '"':
		kind = "a string"
	case 't', 'f':
		kind = "a boolean"
	case 'n':
		kind = "null"
	default:
		if raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') {
			kind = "a number"
		}
	}
	return kind + " " + quotePrefix(string(raw))
}
