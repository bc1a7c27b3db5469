package jsonpatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/state-sync/state-sync/internal/jsonscan"
)

// maxDepth bounds nesting as encoding/json does, so a hostile document cannot make the
// recursive walks below deep.
const maxDepth = 10000

// compactValid checks that b holds exactly one JSON value (whitespace around it allowed)
// and returns it compact: b itself when it has no whitespace outside strings (the usual
// case: documents come compact from the sidecar), else a compact copy. Every other
// function in this package works on compact, valid JSON, so that equal bytes mean equal
// values and a value's bytes are its output. It does not check UTF-8 (as json.Valid).
func compactValid(b []byte) ([]byte, error) {
	v := validator{b: b}
	i, err := v.value(0, 0)
	if err == nil {
		i = v.space(i)
		if i != len(b) {
			err = v.fail(i, "after the value")
		}
	}
	if err != nil {
		return nil, err
	}
	if !v.ws {
		return b, nil
	}
	out := make([]byte, 0, len(b))
	inString := false
	start := 0
	for j := 0; j < len(b); j++ {
		c := b[j]
		if inString {
			switch c {
			case '\\':
				j++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			out = append(out, b[start:j]...)
			start = j + 1
		}
	}
	return append(out, b[start:]...), nil
}

type validator struct {
	b  []byte
	ws bool // whitespace seen outside strings
}

func (v *validator) fail(i int, what string) error {
	if i >= len(v.b) {
		return fmt.Errorf("not valid JSON: unexpected end %s (at byte %d)", what, i)
	}
	return fmt.Errorf("not valid JSON: unexpected %q %s (at byte %d)", v.b[i], what, i)
}

func (v *validator) space(i int) int {
	for i < len(v.b) {
		switch v.b[i] {
		case ' ', '\t', '\n', '\r':
			v.ws = true
			i++
		default:
			return i
		}
	}
	return i
}

func (v *validator) value(i, depth int) (int, error) {
	b := v.b
	i = v.space(i)
	if i >= len(b) {
		return i, v.fail(i, "looking for a value")
	}
	switch c := b[i]; c {
	case '{':
		if depth >= maxDepth {
			return i, fmt.Errorf("not valid JSON here: nested deeper than %d levels (at byte %d)", maxDepth, i)
		}
		i = v.space(i + 1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, v.fail(i, "looking for a member name")
			}
			var err error
			if i, err = v.str(i); err != nil {
				return i, err
			}
			i = v.space(i)
			if i >= len(b) || b[i] != ':' {
				return i, v.fail(i, "after a member name")
			}
			if i, err = v.value(i+1, depth+1); err != nil {
				return i, err
			}
			i = v.space(i)
			if i < len(b) && b[i] == ',' {
				i = v.space(i + 1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				return i + 1, nil
			}
			return i, v.fail(i, "after an object member")
		}
	case '[':
		if depth >= maxDepth {
			return i, fmt.Errorf("not valid JSON here: nested deeper than %d levels (at byte %d)", maxDepth, i)
		}
		i = v.space(i + 1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = v.value(i, depth+1); err != nil {
				return i, err
			}
			i = v.space(i)
			if i < len(b) && b[i] == ',' {
				i++
				continue
			}
			if i < len(b) && b[i] == ']' {
				return i + 1, nil
			}
			return i, v.fail(i, "after an array element")
		}
	case '"':
		return v.str(i)
	case 't':
		return v.literal(i, "true")
	case 'f':
		return v.literal(i, "false")
	case 'n':
		return v.literal(i, "null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return v.number(i)
		}
		return i, v.fail(i, "looking for a value")
	}
}

func (v *validator) literal(i int, lit string) (int, error) {
	if len(v.b)-i >= len(lit) && string(v.b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return i, v.fail(i, "looking for a value")
}

func (v *validator) str(i int) (int, error) {
	b := v.b
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			return j + 1, nil
		}
		if c < 0x20 {
			return j, v.fail(j, "in a string (control characters must be escaped)")
		}
		if c == '\\' {
			j++
			if j >= len(b) {
				break
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j < 5 || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
					return j, v.fail(j, "in a \\u escape")
				}
				j += 4
			default:
				return j, v.fail(j, "after a backslash in a string")
			}
		}
	}
	return len(b), v.fail(len(b), "in a string")
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (v *validator) number(i int) (int, error) {
	b := v.b
	j := i
	if b[j] == '-' {
		j++
	}
	digits := func() bool {
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j > k
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case !digits():
		return j, v.fail(j, "in a number")
	}
	if j < len(b) && b[j] == '.' {
		j++
		if !digits() {
			return j, v.fail(j, "in a number's fraction")
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if !digits() {
			return j, v.fail(j, "in a number's exponent")
		}
	}
	return j, nil
}

// member is one object member of compact JSON: its name as written between the quotes
// (escapes not decoded) and its value's bytes.
type member struct {
	key []byte
	val []byte
}

// appendMembers appends the members of the compact object obj.
func appendMembers(dst []member, obj []byte) []member {
	i := 1
	if obj[i] == '}' {
		return dst
	}
	for {
		kend := jsonscan.SkipString(obj, i)
		vend := jsonscan.SkipValue(obj, kend+1)
		dst = append(dst, member{key: obj[i+1 : kend-1], val: obj[kend+1 : vend]})
		if vend >= len(obj) || obj[vend] != ',' {
			return dst
		}
		i = vend + 1
	}
}

// appendElements appends the elements of the compact array arr.
func appendElements(dst [][]byte, arr []byte) [][]byte {
	i := 1
	if arr[i] == ']' {
		return dst
	}
	for {
		end := jsonscan.SkipValue(arr, i)
		dst = append(dst, arr[i:end])
		if end >= len(arr) || arr[end] != ',' {
			return dst
		}
		i = end + 1
	}
}

// keyString is the member name a raw (still escaped) name stands for.
func keyString(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	return unquote(raw)
}

// keyIs reports whether the raw member name stands for name, without allocating when
// the raw name has no escape.
func keyIs(raw []byte, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	return unquote(raw) == name
}

// unquote decodes the body of a valid JSON string (what lies between the quotes).
func unquote(body []byte) string {
	q := make([]byte, 0, len(body)+2)
	q = append(q, '"')
	q = append(q, body...)
	q = append(q, '"')
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return string(body) // unreachable on valid JSON
	}
	return s
}

// appendQuoted appends s as the body of a JSON string (no quotes): '"', '\' and control
// characters escaped, everything else as it is (no HTML escaping, unlike encoding/json).
func appendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			if c < utf8.RuneSelf {
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	return append(dst, s[start:]...)
}
