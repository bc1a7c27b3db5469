package jsonscan

// MaxDepth is the deepest nesting of arrays and objects that Valid accepts: encoding/json's
// limit, so that Valid and json.Valid give the same answer on every input.
const MaxDepth = 10000

// Valid reports whether b is one JSON value with optional whitespace around it, with the
// answer json.Valid gives for every input (FuzzValid holds the two to it), at a fraction
// of its cost: json.Valid steps a state machine through a function call per byte, where
// this walks strings and numbers in plain loops. Like json.Valid it does not check that
// strings are UTF-8 (strictjson.CheckUTF8 does).
func Valid(b []byte) bool {
	end, ok := ValidValue(b, SkipSpace(b, 0), 0)
	return ok && SkipSpace(b, end) == len(b)
}

// ValidValue checks the JSON value that starts at b[i] (no whitespace before it) and
// returns the index just after it, for a caller that walks a document and checks each
// member's value as it goes: one pass where json.Valid and a split would take two. depth
// is how many arrays or objects around the value the caller has opened already, so that
// the nesting limit (MaxDepth) counts from the document's root. What follows the value
// is the caller's to check.
//
// ok is false when no valid value starts at b[i]: bad syntax, a value that does not end
// inside b, nesting deeper than MaxDepth, i outside b. end is then meaningless but still
// in [0, len(b)]. It never panics.
func ValidValue(b []byte, i, depth int) (end int, ok bool) {
	if i < 0 || i >= len(b) || depth < 0 || depth > MaxDepth {
		return len(b), false
	}
	// open holds the kind of each array or object opened here and not yet closed: '{' or
	// '['. It lives on the stack unless the nesting goes past its capacity.
	open := make([]byte, 0, 32)
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return len(b), false
		}
		switch c := b[i]; c {
		case '"':
			if i = validString(b, i); i < 0 {
				return len(b), false
			}
		case '{', '[':
			if depth+len(open) >= MaxDepth {
				return len(b), false
			}
			open = append(open, c)
			i = SkipSpace(b, i+1)
			if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
				open = open[:len(open)-1]
				i++
				break // an empty array or object is a whole value
			}
			if c == '{' {
				if i = validName(b, i); i < 0 {
					return len(b), false
				}
			}
			continue // the first element's value
		case 't':
			if i = literal(b, i, "true"); i < 0 {
				return len(b), false
			}
		case 'f':
			if i = literal(b, i, "false"); i < 0 {
				return len(b), false
			}
		case 'n':
			if i = literal(b, i, "null"); i < 0 {
				return len(b), false
			}
		default:
			if i = validNumber(b, i); i < 0 {
				return len(b), false
			}
		}
		// A value ended at b[i]: close what it ends, until a ',' asks for the next one.
		for {
			if len(open) == 0 {
				return i, true
			}
			i = SkipSpace(b, i)
			if i >= len(b) {
				return len(b), false
			}
			kind := open[len(open)-1]
			if b[i] == ',' {
				i = SkipSpace(b, i+1)
				if kind == '{' {
					if i = validName(b, i); i < 0 {
						return len(b), false
					}
				}
				break
			}
			if b[i] == '}' && kind == '{' || b[i] == ']' && kind == '[' {
				open = open[:len(open)-1]
				i++
				continue
			}
			return len(b), false
		}
	}
}

// validName checks a member name and its ':' from b[i], and returns the index of the
// member's value (whitespace skipped), or -1.
func validName(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = validString(b, i); i < 0 {
		return -1
	}
	i = SkipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return SkipSpace(b, i+1)
}

// stringStop marks the bytes that end a string's plain run: the quote, the backslash and
// the control characters JSON forbids unescaped. Every other byte, invalid UTF-8 included
// (as encoding/json's scanner), stands for itself.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

// validString checks the string whose opening quote is b[i] and returns the index just
// after its closing quote, or -1.
func validString(b []byte, i int) int {
	j := i + 1
	for {
		for j < len(b) && !stringStop[b[j]] {
			j++
		}
		if j >= len(b) {
			return -1
		}
		switch b[j] {
		case '"':
			return j + 1
		case '\\':
			if j+1 >= len(b) {
				return -1
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+5 >= len(b) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return -1
				}
				j += 6
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// literal checks that b[i:] starts with word and returns the index after it, or -1.
func literal(b []byte, i int, word string) int {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

// validNumber checks the number that starts at b[i] (RFC 8259 §6: -?(0|[1-9][0-9]*),
// then an optional fraction and exponent) and returns the index after it, or -1.
func validNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// digits returns the index of the first byte at or after i that is not a decimal digit.
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
