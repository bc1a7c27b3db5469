package engine

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/state-sync/state-sync/internal/jsonscan"
)

// eventMembers are the members ParseEvent reads, in the order of parseEventFast's seen,
// and last "channel", which an invalidate for one channel carries (the sidecar routes by
// it; the event ignores it), kept only to see a repeat.
var eventMembers = [...]string{"topic", "revision", "epoch", "sourceId", "timestampMs", "channel"}

const channelMember = 5

// parseEventFast reads the usual invalidation, a flat object such as
// {"topic":"app-config","revision":"42"}, in one pass that checks the JSON as it reads the
// members (jsonscan.ValidValue on each value, as json.Valid would judge the whole), where
// the general path costs a reflective decode per member: every invalidation crosses this
// once per message, on the sidecar's reading goroutine. A byte scan for UTF-8 comes first
// (a few nanoseconds on ASCII): the general path refuses bytes that are not UTF-8
// anywhere, in a member it ignores too, so this path must not take them.
//
// It reports false whenever it could read the payload differently from parseEventSlow,
// and the caller takes that path, which also words every error: not UTF-8, not JSON, not
// an object, a member name with an escape or a non-ASCII byte, a name that differs from a
// member's only in case (encoding/json matches it), a repeated member, a member it does
// not know (the general path ignores one and refuses one given twice), a string value
// with an escape or that is not a string, a missing topic or revision, or any value the
// general path rejects (a blank or long topic, a non-canonical revision, a timestamp that
// is no float64).
func parseEventFast(b []byte) (InvalidationEvent, bool) {
	if !utf8.Valid(b) {
		return InvalidationEvent{}, false
	}
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return InvalidationEvent{}, false
	}
	var (
		ev              InvalidationEvent
		seen            [len(eventMembers)]bool
		topic, revision []byte
	)
	i = jsonscan.SkipSpace(b, i+1)
	for {
		// A member name: plain ASCII only, so that it is compared as bytes.
		if i >= len(b) || b[i] != '"' {
			return InvalidationEvent{}, false
		}
		nameEnd := i + 1
		for nameEnd < len(b) && b[nameEnd] != '"' {
			if c := b[nameEnd]; c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				return InvalidationEvent{}, false
			}
			nameEnd++
		}
		if nameEnd >= len(b) {
			return InvalidationEvent{}, false
		}
		name := b[i+1 : nameEnd]
		i = jsonscan.SkipSpace(b, nameEnd+1)
		if i >= len(b) || b[i] != ':' {
			return InvalidationEvent{}, false
		}
		i = jsonscan.SkipSpace(b, i+1)
		end, ok := jsonscan.ValidValue(b, i, 1) // 1: inside the event object
		if !ok {
			return InvalidationEvent{}, false
		}
		value := b[i:end]
		i = jsonscan.SkipSpace(b, end)
		last := false
		switch {
		case i < len(b) && b[i] == ',':
			i = jsonscan.SkipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			if jsonscan.SkipSpace(b, i+1) != len(b) {
				return InvalidationEvent{}, false
			}
			last = true
		default:
			return InvalidationEvent{}, false
		}

		k := memberIndex(name)
		switch {
		case k == -2:
			return InvalidationEvent{}, false // a case variant of a member
		case k == -1:
			// An unknown member: the general path ignores it once and refuses it twice,
			// and telling which would need every name kept; events rarely carry one.
			return InvalidationEvent{}, false
		case seen[k]:
			return InvalidationEvent{}, false
		default:
			seen[k] = true
			if !readMember(&ev, k, value, &topic, &revision) {
				return InvalidationEvent{}, false
			}
		}
		if last {
			break
		}
	}
	if !seen[0] || !seen[1] || topic == nil || revision == nil {
		return InvalidationEvent{}, false
	}
	if len(topic) > MaxNameBytes {
		return InvalidationEvent{}, false
	}
	ev.Topic, ev.Revision = string(topic), Revision(revision)
	if isBlank(ev.Topic) {
		return InvalidationEvent{}, false
	}
	if _, err := ParseRevision(string(ev.Revision)); err != nil {
		return InvalidationEvent{}, false
	}
	return ev, true
}

// memberIndex returns the index in eventMembers of the member named name, -1 for an
// unknown member, -2 for a name that differs from a member's only in ASCII case (name is
// ASCII: parseEventFast takes no other), which encoding/json would read as the member.
func memberIndex(name []byte) int {
	for k, m := range eventMembers {
		if len(name) != len(m) {
			continue
		}
		if string(name) == m {
			return k
		}
		if asciiEqualFold(name, m) {
			return -2
		}
	}
	return -1
}

func asciiEqualFold(a []byte, b string) bool {
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// readMember stores the value of member k, already checked to be JSON, in ev (topic and
// revision as bytes, turned into strings once judged), and reports false for a value that
// parseEventFast leaves to the general path.
func readMember(ev *InvalidationEvent, k int, value []byte, topic, revision *[]byte) bool {
	if k == channelMember {
		return true // any JSON value, as the general path ignores it
	}
	if string(value) == "null" {
		// null topic or revision: missing (the general path words it); null epoch,
		// sourceId, timestampMs: absent. Still seen: a second copy after a null is a
		// repeat, which the general path refuses.
		return k > 1
	}
	if k == 4 { // timestampMs
		if value[0] == '"' {
			return false
		}
		ts, err := strconv.ParseFloat(string(value), 64)
		if err != nil {
			return false
		}
		ev.TimestampMs = &ts
		return true
	}
	if value[0] != '"' {
		return false
	}
	s := value[1 : len(value)-1]
	if bytes.IndexByte(s, '\\') >= 0 {
		return false // an escape: the general path decodes it
	}
	switch k {
	case 0:
		*topic = s
	case 1:
		*revision = s
	case 2:
		ev.Epoch = string(s)
	case 3:
		ev.SourceID = string(s)
	}
	return true
}
