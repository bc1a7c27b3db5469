// Package jsonscan walks JSON that is already known to be valid (json.Valid), without
// decoding it: the hot paths use it to slice members out of a message with no copies.
// Every function assumes valid input; on invalid input it returns a position, never
// panics, and the caller's slower, checked path takes over.
package jsonscan

import "bytes"

// SkipSpace returns the index of the first non-whitespace byte at or after i.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// SkipValue returns the index just after the value that starts at b[i].
func SkipValue(b []byte, i int) int {
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
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// SkipString returns the index just after the string that starts at b[i].
func SkipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		k := bytes.IndexAny(b[j:], `"\`)
		if k < 0 {
			return len(b)
		}
		j += k
		if b[j] == '"' {
			return j + 1
		}
		j++ // the escaped byte
	}
	return len(b)
}
