package jsonpatch

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/state-sync/state-sync/internal/strictjson"
)

// Op is one RFC 6902 operation, decoded.
type Op struct {
	// Op is "add", "remove", "replace", "move", "copy" or "test".
	Op string
	// Path is the target location. PathText is it as sent, for error messages.
	Path     Pointer
	PathText string
	// From is the source location of "move" and "copy".
	From Pointer
	// Value is the compact JSON value of "add", "replace" and "test".
	Value json.RawMessage

	checked bool // Value is known compact and valid (DecodePatch checked it)
}

// Patch is an RFC 6902 JSON Patch: operations applied in order.
type Patch []Op

// wireOp is an operation as sent. Members other than these are ignored (RFC 6902 §4).
type wireOp struct {
	Op    *string         `json:"op"`
	Path  *string         `json:"path"`
	From  *string         `json:"from"`
	Value json.RawMessage `json:"value"`
}

// DecodePatch decodes an RFC 6902 patch: a JSON array of operation objects. It refuses,
// with an *Error of Kind Malformed naming the operation's index: anything but an array
// of objects, an unknown op, a missing or null "path" (or "from" for move and copy, or
// "value" for add, replace and test), a pointer that is not RFC 6901, and a member
// name given twice in one operation (readers disagree on which copy counts: RFC 6902
// Appendix A.13).
func DecodePatch(b []byte) (Patch, error) {
	var raw []json.RawMessage
	if err := strictjson.Decode(b, &raw); err != nil {
		var se *strictjson.Error
		if errors.As(err, &se) && se.Kind == strictjson.Type {
			return nil, opError(Malformed, "a JSON Patch is a JSON array of operations like {\"op\":\"replace\",\"path\":\"/a\",\"value\":1}: %v", err)
		}
		return nil, opError(Malformed, "%v", err)
	}
	if raw == nil {
		return nil, opError(Malformed, "a JSON Patch is a JSON array of operations, not null: send [] for no change")
	}
	p := make(Patch, 0, len(raw))
	for i, r := range raw {
		op, err := decodeOp(r)
		if err != nil {
			err.Index = i
			return nil, err
		}
		p = append(p, op)
	}
	return p, nil
}

func decodeOp(r json.RawMessage) (Op, *Error) {
	var w wireOp
	if len(r) == 0 || r[0] != '{' {
		return Op{}, &Error{Kind: Malformed, Msg: "an operation is a JSON object like {\"op\":\"replace\",\"path\":\"/a\",\"value\":1}"}
	}
	if err := strictjson.Decode(r, &w); err != nil {
		return Op{}, &Error{Kind: Malformed, Msg: err.Error()}
	}
	var op Op
	if w.Path != nil {
		op.PathText = *w.Path
	}
	fail := func(format string, args ...any) (Op, *Error) {
		return Op{}, &Error{Kind: Malformed, Path: op.PathText, Msg: fmt.Sprintf(format, args...)}
	}
	if w.Op == nil {
		return fail("the member \"op\" is missing or null: give one of add, remove, replace, move, copy, test")
	}
	op.Op = *w.Op
	needFrom, needValue := false, false
	switch op.Op {
	case "add", "replace", "test":
		needValue = true
	case "move", "copy":
		needFrom = true
	case "remove":
	default:
		return fail("unknown op %q: use one of add, remove, replace, move, copy, test (lower case)", op.Op)
	}
	if w.Path == nil {
		return fail("%s needs a \"path\" (a JSON Pointer string; \"\" is the whole document), and it is missing or null", op.Op)
	}
	var err error
	if op.Path, err = ParsePointer(*w.Path); err != nil {
		return fail("\"path\": %v", err)
	}
	if needFrom {
		if w.From == nil {
			return fail("%s needs a \"from\" (a JSON Pointer string), and it is missing or null", op.Op)
		}
		if op.From, err = ParsePointer(*w.From); err != nil {
			return fail("\"from\": %v", err)
		}
	}
	if needValue {
		if w.Value == nil {
			return fail("%s needs a \"value\" (any JSON value, null included), and it is missing", op.Op)
		}
		// strictjson checked the syntax; compactValid only compacts.
		v, err := compactValid(w.Value)
		if err != nil {
			return fail("\"value\": %v", err)
		}
		op.Value = v
		op.checked = true
	}
	return op, nil
}

// MarshalJSON writes the patch in RFC 6902 form.
func (p Patch) MarshalJSON() ([]byte, error) {
	out := []byte{'['}
	for i, op := range p {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"op":"`...)
		out = appendQuoted(out, op.Op)
		out = append(out, `","path":"`...)
		out = appendQuoted(out, op.Path.String())
		out = append(out, '"')
		switch op.Op {
		case "move", "copy":
			out = append(out, `,"from":"`...)
			out = appendQuoted(out, op.From.String())
			out = append(out, '"')
		case "add", "replace", "test":
			v, err := compactValid(op.Value)
			if err != nil {
				return nil, fmt.Errorf("json patch operation %d: value: %v", i, err)
			}
			out = append(out, `,"value":`...)
			out = append(out, v...)
		}
		out = append(out, '}')
	}
	return append(out, ']'), nil
}
