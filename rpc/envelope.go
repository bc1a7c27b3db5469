package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/state-sync/state-sync/internal/jsonscan"
	"github.com/state-sync/state-sync/internal/strictjson"
)

// envelope is a JSON-RPC message with every member kept raw.
type envelope struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// splitEnvelope is the fast way to read a message's members raw: one pass that checks the
// message is JSON (as json.Valid would: jsonscan.ValidValue on each member's value) while
// it finds where each member's value starts and ends, the values sliced out of the frame,
// never copied. It reports false, leaving the work to decodeEnvelope and its error
// messages, for anything off the common path: invalid JSON, not an object, a member name
// that is not exactly one of the envelope's (encoding/json would match "Method" too), an
// escaped or repeated name.
func splitEnvelope(b []byte, env *envelope) bool {
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	var seen [6]bool
	i := jsonscan.SkipSpace(b, 1)
	if i < len(b) && b[i] == '}' {
		return jsonscan.SkipSpace(b, i+1) == len(b)
	}
	for {
		// A member name, taken only when plain: an escape or a control character leaves
		// the message to decodeEnvelope.
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end := i + 1
		for end < len(b) && b[end] != '"' && b[end] != '\\' && b[end] >= 0x20 {
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
		valueEnd, ok := jsonscan.ValidValue(b, i, 1) // 1: inside the envelope
		if !ok {
			return false
		}
		value := json.RawMessage(b[i:valueEnd])
		var slot *json.RawMessage
		var k int
		switch string(name) {
		case "jsonrpc":
			slot, k = &env.JSONRPC, 0
		case "id":
			slot, k = &env.ID, 1
		case "method":
			slot, k = &env.Method, 2
		case "params":
			slot, k = &env.Params, 3
		case "result":
			slot, k = &env.Result, 4
		case "error":
			slot, k = &env.Error, 5
		default:
			return false
		}
		if seen[k] {
			return false
		}
		seen[k] = true
		*slot = value
		i = jsonscan.SkipSpace(b, valueEnd)
		switch {
		case i < len(b) && b[i] == ',':
			i = jsonscan.SkipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return jsonscan.SkipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// methods are the methods the sidecar serves (Server.handle), each read from the frame
// without a decode (methodName).
var methods = [...]string{
	"initialize", "channel.open", "channel.close", "channel.refresh", "channel.status",
	"channel.list", "invalidate", "state.set", "state.delete", "state.get", "shutdown",
}

// notifications holds one request value per method in methods, as a notification of it
// (no id): admit hands the same value to every notification of that method, so that an
// invalidate notification, the bulk of what a host writes, costs no allocation. They are
// shared by every notification, on the read loop and on the goroutines handlers start:
// nothing may change them (handlers read Method and Notif only, and never set Params,
// Meta or ExtraFields; TestSharedNotificationsStayUnchanged checks it).
var notifications = func() (reqs [len(methods)]jsonrpc2.Request) {
	for i, m := range methods {
		reqs[i] = jsonrpc2.Request{Method: m, Notif: true}
	}
	return reqs
}()

// methodName reads the envelope's method, a JSON string. A method the sidecar serves is
// spelt without escapes, so it is compared as bytes and returned as the constant, with its
// index in methods; any other name is decoded (decodeString), with known -1.
func methodName(raw json.RawMessage) (method string, known int, ok bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		name := raw[1 : len(raw)-1]
		for i, m := range methods {
			if string(name) == m {
				return m, i, true
			}
		}
	}
	return decodeMethod(raw)
}

// decodeMethod is methodName's slow path, a function of its own so that the string the
// decoder fills escapes to the heap here only.
func decodeMethod(raw json.RawMessage) (method string, known int, ok bool) {
	var s string
	if decodeString(raw, &s) != nil {
		return "", -1, false
	}
	return s, -1, true
}

// decodeEnvelope is the slow path, for every message splitEnvelope gives up on: one
// reading only (see internal/strictjson), so that "Method" beside "method", "id" twice or
// "jſonrpc" is refused, never read one way here and another way by the relay.
func decodeEnvelope(b []byte, env *envelope) error {
	return strictjson.Decode(b, env)
}

// envelopeError maps decodeEnvelope's refusal to the code and message of the answer:
// JSON that is not JSON (or not UTF-8) is -32700, anything else -32600 naming the member.
func envelopeError(frame []byte, err error) (int64, string) {
	var serr *strictjson.Error
	if !errors.As(err, &serr) {
		return jsonrpc2.CodeInvalidRequest, "invalid request: " + err.Error()
	}
	switch serr.Kind {
	case strictjson.Syntax:
		return jsonrpc2.CodeParseError, "parse error: " + syntaxError(frame)
	case strictjson.InvalidUTF8:
		return jsonrpc2.CodeParseError, "parse error: " + serr.Error()
	case strictjson.Type:
		if serr.Path == "" {
			return jsonrpc2.CodeInvalidRequest, "invalid request: a JSON-RPC message is a JSON object"
		}
	}
	return jsonrpc2.CodeInvalidRequest, "invalid request: " + serr.Error()
}

// canonicalID returns the id as jsonrpc2 reads it back: a string or a non-negative
// integer that fits in int64.
func canonicalID(raw json.RawMessage) ([]byte, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	if raw[0] == '"' {
		var s string
		if decodeString(raw, &s) != nil {
			return nil, false
		}
		b, _ := json.Marshal(s)
		return b, true
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 0 {
		return nil, false
	}
	return strconv.AppendInt(nil, n, 10), true
}

// decodeString reads a JSON string value of the envelope. One with an escape goes through
// strictjson, which refuses a lone surrogate: encoding/json would read "\ud800" and
// "\udbff" as the same U+FFFD, JavaScript as two different strings.
func decodeString(raw json.RawMessage, s *string) error {
	if bytes.IndexByte(raw, '\\') >= 0 {
		return strictjson.Decode(raw, s)
	}
	return json.Unmarshal(raw, s)
}

// requestID is a canonical id as jsonrpc2 would have read it.
func requestID(id []byte) jsonrpc2.ID {
	if id[0] == '"' {
		var s string
		_ = json.Unmarshal(id, &s)
		return jsonrpc2.ID{Str: s, IsString: true}
	}
	n, _ := strconv.ParseUint(string(id), 10, 64)
	return jsonrpc2.ID{Num: n}
}

func idOrNull(id []byte, ok bool) []byte {
	if !ok {
		return nil
	}
	return id
}

func syntaxError(frame []byte) string {
	var v any
	err := json.Unmarshal(frame, &v)
	if err == nil {
		return "not a JSON-RPC message"
	}
	hint := ""
	if bytes.HasPrefix(frame, []byte("\xef\xbb\xbf")) {
		return "the message starts with a byte order mark (bytes EF BB BF), which JSON-RPC over a stream does not allow: write UTF-8 without a byte order mark"
	}
	if bytes.Count(frame, []byte("{")) != bytes.Count(frame, []byte("}")) {
		hint = " (one message per line: pretty-printed JSON must be compacted, e.g. with jq -c)"
	}
	return err.Error() + hint
}
