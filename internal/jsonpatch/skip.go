package jsonpatch

// skipCompact returns the index just after the value starting at b[i], in compact, valid
// JSON: what jsonscan.SkipValue returns there, in about half its time on documents of
// small records, where a quote or a bracket comes every few bytes (short strings are
// walked inline instead of with a call per string, and one table lookup classifies each
// byte). It is the scan under the splice path (splice.go). On other input it returns a
// position in [i, len(b)] and does not panic.
func skipCompact(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipStringCompact(b, i)
	case '{', '[':
	default: // a number or a literal: compact, so it ends at the next , } or ]
		j := i
		for j < len(b) && class[b[j]] != closer && b[j] != ',' {
			j++
		}
		return j
	}
	depth := 0
	for j := i; j < len(b); j++ {
		switch class[b[j]] {
		case quote:
			j++
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
		case opener:
			depth++
		case closer:
			depth--
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(b)
}

func skipStringCompact(b []byte, i int) int {
	j := i + 1
	for j < len(b) && b[j] != '"' {
		if b[j] == '\\' {
			j++
		}
		j++
	}
	return min(j+1, len(b))
}

const (
	quote = 1 + iota
	opener
	closer
)

var class = [256]byte{'"': quote, '{': opener, '[': opener, '}': closer, ']': closer}
