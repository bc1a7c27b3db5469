package engine

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/state-sync/state-sync/internal/jsonscan"
)

// eventMembers are the members ParseEvent reads, in the order of parseEventFast's seen.
var eventMembers = [...]string{"topic", "revision", "epoch", "sourceId", "timestampMs"}

// parseEventFast reads the usual invalidation, a flat object such as
// {"topic":"app-config","revision":"42"}, in one validating pass (json.Valid) and one
// reading pass, where the general path costs a reflective decode per member: every
// invalidation crosses this once per message, on the sidecar's reading goroutine.
//
// It reports false whenever it could read the payload differently from parseEventSlow,
// and the caller takes that path, which also words every error: not an object, a member
// name with an escape or a non-ASCII byte, a name that differs from a member's only in
// case (encoding/json matches it), a repeated member, a string value with an escape or
// that is not a string, a missing topic or revision, or any value the general path
// rejects (a blank topic, a non-canonical revision, a timestamp that is no float64).
func parseEventFast(b []byte) (InvalidationEvent, bool) {
	if !json.Valid(b) {
		return InvalidationEvent{}, false
	}
	i := jsonscan.SkipSpace(b, 0)
	if b[i] != '{' {
		return InvalidationEvent{}, false
	}
	var (
		ev   InvalidationEvent
		seen [len(eventMembers)]bool
	)
	i++
	for {
		i = jsonscan.SkipSpace(b, i)
		if b[i] == '}' {
			break
		}
		nameEnd := i + 1 // b is valid JSON: b[i] opens the member's name
		for b[nameEnd] != '"' {
			if b[nameEnd] == '\\' || b[nameEnd] >= utf8.RuneSelf {
				return InvalidationEvent{}, false
			}
			nameEnd++
		}
		name := string(b[i+1 : nameEnd])
		i = jsonscan.SkipSpace(b, jsonscan.SkipSpace(b, nameEnd+1)+1) // past the ':'
		end := jsonscan.SkipValue(b, i)
		value := b[i:end]
		i = jsonscan.SkipSpace(b, end)
		if b[i] == ',' {
			i++
		}

		k := -1
		for j, m := range eventMembers {
			if name == m {
				k = j
			} else if strings.EqualFold(name, m) {
				return InvalidationEvent{}, false
			}
		}
		if k < 0 {
			continue // an unknown member, ignored as the general path does
		}
		if seen[k] {
			return InvalidationEvent{}, false
		}
		seen[k] = true
		if string(value) == "null" {
			// null topic or revision: missing (the general path words it); null epoch,
			// sourceId, timestampMs: absent. Still seen: a second copy after a null is a
			// repeat, which the general path refuses.
			if k <= 1 {
				return InvalidationEvent{}, false
			}
			continue
		}
		if k == 4 { // timestampMs
			if value[0] == '"' {
				return InvalidationEvent{}, false
			}
			ts, err := strconv.ParseFloat(string(value), 64)
			if err != nil {
				return InvalidationEvent{}, false
			}
			ev.TimestampMs = &ts
			continue
		}
		if value[0] != '"' {
			return InvalidationEvent{}, false
		}
		s := value[1 : len(value)-1]
		for _, c := range s {
			if c == '\\' {
				return InvalidationEvent{}, false
			}
		}
		if !utf8.Valid(s) { // encoding/json would replace the invalid bytes
			return InvalidationEvent{}, false
		}
		switch k {
		case 0:
			ev.Topic = string(s)
		case 1:
			ev.Revision = Revision(s)
		case 2:
			ev.Epoch = string(s)
		case 3:
			ev.SourceID = string(s)
		}
	}
	if !seen[0] || !seen[1] {
		return InvalidationEvent{}, false
	}
	if _, err := ValidateTopic(ev.Topic); err != nil {
		return InvalidationEvent{}, false
	}
	if _, err := ParseRevision(string(ev.Revision)); err != nil {
		return InvalidationEvent{}, false
	}
	return ev, true
}
