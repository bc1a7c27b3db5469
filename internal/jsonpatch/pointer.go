package jsonpatch

import (
	"fmt"
	"strings"
)

// Pointer is a parsed RFC 6901 JSON Pointer: its reference tokens, unescaped ("~1" is
// "/", "~0" is "~"). The empty Pointer is the whole document.
type Pointer []string

// ParsePointer parses an RFC 6901 JSON Pointer: "" or "/" followed by tokens separated
// by "/", where "~" appears only as "~0" or "~1".
func ParsePointer(s string) (Pointer, error) {
	if s == "" {
		return Pointer{}, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("JSON Pointer %q does not start with \"/\": write \"/%s\" for the member %q, or \"\" for the whole document", s, escapeToken(s), s)
	}
	parts := strings.Split(s[1:], "/")
	for i, part := range parts {
		if !strings.Contains(part, "~") {
			continue
		}
		for j := 0; j < len(part); j++ {
			if part[j] == '~' && (j+1 == len(part) || (part[j+1] != '0' && part[j+1] != '1')) {
				return nil, fmt.Errorf("JSON Pointer %q has a \"~\" not followed by 0 or 1: write \"~0\" for \"~\" and \"~1\" for \"/\"", s)
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
	}
	return Pointer(parts), nil
}

// String is the pointer in RFC 6901 form.
func (p Pointer) String() string {
	var b strings.Builder
	for _, tok := range p {
		b.WriteByte('/')
		b.WriteString(escapeToken(tok))
	}
	return b.String()
}

// escapeToken writes "~" as "~0" and "/" as "~1" (in that order, RFC 6901 §3).
func escapeToken(tok string) string {
	if !strings.ContainsAny(tok, "~/") {
		return tok
	}
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

// isPrefix reports whether p is a proper prefix of q (q is inside the value at p).
func (p Pointer) isProperPrefix(q Pointer) bool {
	if len(p) >= len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// arrayIndex reads tok as an array index for an array of n elements: decimal digits
// without leading zeros (RFC 6901 §4), at most max. "-" is n when allowDash (add's
// "append"), and refused otherwise.
func arrayIndex(tok string, n int, max int, allowDash bool) (int, error) {
	if tok == "-" {
		if allowDash {
			return n, nil
		}
		return 0, fmt.Errorf("index \"-\" (past the end of the array of %d elements) exists only for add: name an element 0..%d", n, n-1)
	}
	if tok == "" || len(tok) > 1 && tok[0] == '0' {
		return 0, fmt.Errorf("array index %q is not a decimal index without leading zeros", tok)
	}
	v := 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("array index %q is not a decimal index (digits only, no sign, exponent or leading zeros)", tok)
		}
		if v > (1<<31)/10 {
			return 0, fmt.Errorf("array index %s is out of range: the array has %d elements", tok, n)
		}
		v = v*10 + int(c-'0')
	}
	if v > max {
		return 0, fmt.Errorf("array index %d is out of range: the array has %d elements", v, n)
	}
	return v, nil
}
