package rpc

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
	"unsafe"
)

// writeCall sends a request to the host with id (digits) and params. An apply is encoded
// by hand and its data written as it is: the bytes the host (or state.set) sent, already
// checked when they came in, neither decoded nor copied on the way out, however many
// channels receive them. Anything else goes through json.Marshal.
func (c *conn) writeCall(id, method string, params any) error {
	head := make([]byte, 0, 160)
	head = append(head, `{"jsonrpc":"2.0","id":`...)
	head = append(head, id...)
	head = append(head, `,"method":`...)
	head = appendJSONString(head, method)
	head = append(head, `,"params":`...)
	if p, ok := params.(applyParams); ok {
		head = appendApplyHead(head, p)
		return c.write(head, c.lineSafe(p.Data), []byte("}}"))
	}
	b, err := json.Marshal(params)
	if err != nil {
		return err
	}
	head = append(head, b...)
	return c.write(append(head, '}'))
}

// appendApplyHead appends apply's params up to and including `"data":`, members in the
// order of applyParams' fields; wire_test.go checks it against json.Marshal(applyParams).
func appendApplyHead(b []byte, p applyParams) []byte {
	b = append(b, `{"channel":`...)
	b = appendJSONString(b, p.Channel)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, p.Topic)
	b = append(b, `,"revision":`...)
	b = appendJSONString(b, string(p.Revision))
	if p.Epoch != "" {
		b = append(b, `,"epoch":`...)
		b = appendJSONString(b, p.Epoch)
	}
	if p.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	return append(b, `,"data":`...)
}

// appendJSONString appends s as a JSON string. Names and revisions are plain ASCII almost
// always; anything else is left to encoding/json (escapes, invalid UTF-8, U+2028).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainData remembers the last data lineSafe checked: the channels of a topic all send
// the same snapshot, so it is checked once, not once per channel. The key is the data's
// address and length: snapshot data is never mutated after it is read, and ptr keeps its
// array alive, so the same address and length mean the same bytes.
type plainData struct {
	ptr *byte
	n   int
	out []byte
}

var jsonNullBytes = []byte("null")

// lineSafe returns data ready to be written inside one NDJSON line: data itself, unless
// it holds a raw CR or LF (insignificant whitespace, possible in data that came in with
// LSP framing, or with a CR inside an NDJSON line, or from a hand-edited store file),
// which a line-based reader (Node's readline splits on a lone CR too) would take for the
// end of the message; such data is compacted. Empty data is null.
func (c *conn) lineSafe(data json.RawMessage) []byte {
	if len(data) == 0 {
		return jsonNullBytes
	}
	ptr := unsafe.SliceData(data)
	if last := c.plain.Load(); last != nil && last.ptr == ptr && last.n == len(data) {
		return last.out
	}
	out := []byte(data)
	if bytes.IndexByte(data, '\n') >= 0 || bytes.IndexByte(data, '\r') >= 0 {
		var buf bytes.Buffer
		buf.Grow(len(data))
		if err := json.Compact(&buf, data); err == nil {
			out = buf.Bytes()
		} else {
			// Not JSON: impossible for data that came through the read loop or the store;
			// keep the message on one line anyway.
			out = bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r"), []byte(" ")), []byte("\n"), []byte(" "))
		}
	}
	c.plain.Store(&plainData{ptr: ptr, n: len(data), out: out})
	return out
}
