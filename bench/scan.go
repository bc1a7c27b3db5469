package main

import (
	"bytes"
	"encoding/json"
)

// frame is what the harness needs from one message the sidecar wrote. Every slice points
// into the read buffer and is valid until the next read.
type frame struct {
	id       []byte // raw JSON id; nil for a notification
	method   []byte // request or notification method; nil for a response
	channel  []byte // params.channel (apply, getSnapshot)
	topic    []byte // params.topic
	revision []byte // params.revision (apply)
	result   []byte // raw result of a response
	errObj   []byte // raw error of a response
	params   []byte // raw params, only for notifications (error), which are rare
	response bool
}

// scanFrame reads a message lazily: it walks the top-level members and those of params,
// and stops at params.data of an apply once it knows everything else, so that the harness
// does not pay to scan a snapshot it never looks at (the floor does not either). Any shape
// it does not expect returns false, and the caller decodes the frame with encoding/json.
func scanFrame(b []byte, f *frame) bool {
	*f = frame{}
	_, _, ok := members(b, skipWS(b, 0), func(key []byte, i int) (end int, stop, ok bool) {
		switch string(key) {
		case "id":
			end, ok = skipValue(b, i)
			if !ok {
				return 0, false, false
			}
			f.id = b[i:end]
			return end, false, true
		case "method":
			f.method, end, ok = readString(b, i)
			return end, false, ok
		case "params":
			end, done, ok := scanParams(b, i, f)
			if !ok || done {
				return end, done, ok // done: an apply, read up to its data
			}
			if f.method != nil && string(f.method) != "apply" && string(f.method) != "getSnapshot" {
				f.params = b[i:end]
			}
			return end, false, true
		case "result":
			end, ok = skipValue(b, i)
			if !ok {
				return 0, false, false
			}
			f.result, f.response = b[i:end], true
			return end, false, true
		case "error":
			end, ok = skipValue(b, i)
			if !ok {
				return 0, false, false
			}
			f.errObj, f.response = b[i:end], true
			return end, false, true
		}
		end, ok = skipValue(b, i)
		return end, false, ok
	})
	return ok
}

// scanParams reads the members of params it knows. done is true when it stopped at the
// data of an apply whose id, method, channel and revision are known.
func scanParams(b []byte, i int, f *frame) (end int, done, ok bool) {
	return members(b, i, func(key []byte, i int) (end int, stop, ok bool) {
		switch string(key) {
		case "channel", "topic", "revision":
			if b[i] != '"' {
				break
			}
			s, end, ok := readString(b, i)
			switch string(key) {
			case "channel":
				f.channel = s
			case "topic":
				f.topic = s
			default:
				f.revision = s
			}
			return end, false, ok
		case "data":
			if string(f.method) == "apply" && f.id != nil && f.channel != nil && f.revision != nil {
				return i, true, true
			}
		}
		end, ok = skipValue(b, i)
		return end, false, ok
	})
}

// members walks the object at b[i] ('{'): for each member it calls visit with the key
// and the index of the value, and visit returns the index just past the value, or stop
// to end the walk there (end is then visit's). ok is false for anything else than an
// object whose members visit accepted.
func members(b []byte, i int, visit func(key []byte, at int) (end int, stop, ok bool)) (end int, stopped, ok bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, false, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, false, true
	}
	for {
		key, next, ok := readString(b, i)
		if !ok {
			return 0, false, false
		}
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return 0, false, false
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return 0, false, false
		}
		end, stop, ok := visit(key, i)
		if !ok {
			return 0, false, false
		}
		if stop {
			return end, true, true
		}
		i = skipWS(b, end)
		if i >= len(b) {
			return 0, false, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, false, true
		default:
			return 0, false, false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// readString returns the content of the string at b[i]; strings with escapes are left to
// the slow path (the harness's names never need them).
func readString(b []byte, i int) (s []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	j := bytes.IndexByte(b[i+1:], '"')
	if j < 0 {
		return nil, 0, false
	}
	s = b[i+1 : i+1+j]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, 0, false
	}
	return s, i + 2 + j, true
}

// skipValue returns the end of the JSON value at b[i], without checking it beyond what
// finding its end needs.
func skipValue(b []byte, i int) (int, bool) {
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1, true
			}
		}
		return 0, false
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipValue(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		return j, j > i
	}
}

// slowFrame is the fallback: a full decode with encoding/json.
func slowFrame(b []byte, f *frame) bool {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method *string         `json:"method"`
		Params json.RawMessage `json:"params"`
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	*f = frame{id: m.ID, result: m.Result, errObj: m.Error, params: m.Params}
	if len(m.ID) == 0 || string(m.ID) == "null" {
		f.id = nil
	}
	if m.Method != nil {
		f.method = []byte(*m.Method)
		var p struct {
			Channel, Topic, Revision string
		}
		if json.Unmarshal(m.Params, &p) == nil {
			f.channel, f.topic, f.revision = []byte(p.Channel), []byte(p.Topic), []byte(p.Revision)
			if p.Channel == "" {
				f.channel = nil
			}
		}
	} else {
		f.response = true
	}
	return true
}

// parseUint reads a canonical decimal revision; ok is false for anything else.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
