// Package jsonscan walks JSON without decoding it: the hot paths use it to slice members
// out of a message, with no copies, and to check it (Valid, ValidValue) as they go.
//
// On valid input the Skip functions return the positions documented. On any other input,
// truncated, malformed, or with an index outside b, they still return a position in
// [0, len(b)] and never panic: len(b) when the value does not end inside b. A caller that
// cannot trust its input checks it first (Valid), or walks it with ValidValue, which
// says whether each value is valid, or treats len(b) as "no value". No function here
// panics, whatever its input and indices (FuzzScan, FuzzValid).
package jsonscan

import "bytes"

// SkipSpace returns the index of the first non-whitespace byte at or after i, or len(b)
// if there is none or i is outside b.
func SkipSpace(b []byte, i int) int {
	if i < 0 || i > len(b) {
		return len(b)
	}
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// SkipValue returns the index just after the value that starts at b[i]: len(b) if the
// value does not end inside b or i is outside b, and i itself if b[i] cannot start a
// value (',', ':', '}' or ']').
func SkipValue(b []byte, i int) int {
	if i < 0 || i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = SkipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default: // a number, true, false or null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != ':' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// SkipString returns the index just after the string whose opening quote is b[i], or
// len(b) if it is not closed inside b or i is outside b.
//
// It jumps from quote to quote (bytes.IndexByte, vectorised) and looks back at each: a
// quote ends the string unless an odd run of backslashes precedes it. Snapshots are
// mostly short strings, where looking for either byte of `"\` at each step (IndexAny)
// cost more than the strings themselves. Each backslash is looked at once, before the one
// quote it precedes, so the walk stays linear.
func SkipString(b []byte, i int) int {
	if i < 0 || i >= len(b) {
		return len(b)
	}
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		q := j + k
		backslashes := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return len(b)
}
