package strictjson

import (
	"bytes"
	"errors"
	"unicode/utf8"
)

// errSyntax is the scanner giving up: the input is not JSON where it looked. The scanner
// trusts nothing and never words a syntax error itself; encoding/json then reports it.
var errSyntax = errors.New("strictjson: syntax")

// maxDepth is one more than encoding/json's nesting limit, so that everything it decodes
// is walked, and anything deeper is left to it to refuse.
const maxDepth = 10001

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just after the string that opens at b[i] (b[i] == '"').
// The closing quote is the first one not escaped: preceded by an even run of backslashes.
// bytes.IndexByte finds candidates at memchr speed, which is what makes skipping a large
// opaque value cheap.
func stringEnd(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errSyntax
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
}

// skipValue returns the index just after the value that starts at b[i], without looking
// inside strings beyond finding where they end, and without checking the grammar inside
// containers (encoding/json does, afterwards).
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		// One loop over the bytes, strings included, stopping only at the bytes that
		// matter (a table lookup per byte): opaque values are mostly short strings,
		// numbers and punctuation, where a memchr call per string costs more than it saves.
		depth := 0
		for j := i; j < len(b); j++ {
			for j < len(b) && !structural[b[j]] {
				j++
			}
			if j == len(b) {
				break
			}
			switch b[j] {
			case '"':
				for j++; j < len(b); j++ {
					for j < len(b) && !inString[b[j]] {
						j++
					}
					if j == len(b) || b[j] == '"' {
						break
					}
					j++ // a backslash: the byte after it is escaped
				}
			case '{', '[':
				depth++
				if depth > maxDepth {
					return 0, errSyntax
				}
			default: // '}', ']'
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax
	}
	j := i
	for j < len(b) && isLiteralByte(b[j]) {
		j++
	}
	if j == i {
		return 0, errSyntax
	}
	return j, nil
}

// structural marks the bytes skipValue stops at outside strings, inString those it
// stops at inside one.
var structural, inString = func() (s, in [256]bool) {
	for _, c := range []byte(`"{}[]`) {
		s[c] = true
	}
	in['"'], in['\\'] = true, true
	return s, in
}()

func isLiteralByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-' || c == '+' || c == '.' || c == 'E'
}

// unquote decodes the body of a JSON string (between its quotes). lone is the index in
// body of the first lone surrogate escape, or -1. ok is false for an escape JSON does not
// have. body without a backslash is returned as it is, not copied.
func unquote(body []byte) (s []byte, lone int, ok bool) {
	k := bytes.IndexByte(body, '\\')
	if k < 0 {
		return body, -1, true
	}
	out := make([]byte, 0, len(body))
	out = append(out, body[:k]...)
	lone = -1
	for i := k; i < len(body); {
		c := body[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(body) {
			return nil, -1, false
		}
		switch body[i+1] {
		case '"', '\\', '/':
			out = append(out, body[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, isLone, ok := readEscape(body, i)
			if !ok {
				return nil, -1, false
			}
			if isLone && lone < 0 {
				lone = i
			}
			out = utf8.AppendRune(out, r)
			i += n
			continue
		default:
			return nil, -1, false
		}
		i += 2
	}
	return out, lone, true
}

// readEscape reads the \u escape at body[i], and the low half after it when it is a high
// surrogate: the rune, the bytes read, whether it is a lone surrogate (read as U+FFFD,
// as encoding/json does), and false when the hex digits are not there.
func readEscape(body []byte, i int) (r rune, n int, lone bool, ok bool) {
	hi, ok := hex4(body, i+2)
	if !ok {
		return 0, 0, false, false
	}
	switch {
	case hi < 0xD800 || hi > 0xDFFF:
		return hi, 6, false, true
	case hi <= 0xDBFF && i+12 <= len(body) && body[i+6] == '\\' && body[i+7] == 'u':
		if lo, ok := hex4(body, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
			return 0x10000 + (hi-0xD800)<<10 + (lo - 0xDC00), 12, false, true
		}
	}
	return utf8.RuneError, 6, true, true
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// loneSurrogate returns the index in body (a string's bytes between its quotes) of the
// first lone surrogate escape, or -1, without decoding anything else.
func loneSurrogate(body []byte) int {
	for i := 0; ; {
		k := bytes.IndexByte(body[i:], '\\')
		if k < 0 {
			return -1
		}
		i += k
		if i+1 >= len(body) {
			return -1
		}
		if body[i+1] != 'u' {
			i += 2 // \\ included: the byte after it is never an escape
			continue
		}
		_, n, lone, ok := readEscape(body, i)
		if !ok {
			return -1 // not JSON: encoding/json reports it
		}
		if lone {
			return i
		}
		i += n
	}
}
