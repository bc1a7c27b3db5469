package strictjson

import (
	"bytes"
	"unicode/utf8"
)

// CheckUTF8 refuses b unless it is all UTF-8, with an *Error (InvalidUTF8) naming the
// byte and, when b is JSON, the member holding it. It is the check for a whole frame at
// the door, and for opaque data (state.set's data, a getSnapshot answer's) on its own:
// a byte scan, never a decode (utf8.Valid, with an ASCII fast path: several GB/s). The
// path is looked for only once the scan has failed.
func CheckUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	return utf8Error(b)
}

// CheckSurrogates refuses b, JSON text, when a string anywhere in it (names, values,
// opaque data) holds a lone surrogate escape, with an *Error (LoneSurrogate) naming the
// byte and the member. Decode refuses these only where they become Go strings; strict
// readers refuse them everywhere (Rust's serde_json fails the whole message: "lone
// leading surrogate in hex escape"), so data passed through opaque to such a host needs
// this check too. A byte scan for `\u` (memchr speed), decoding nothing.
func CheckSurrogates(b []byte) error {
	for i := 0; ; {
		k := bytes.IndexByte(b[i:], '\\')
		if k < 0 {
			return nil
		}
		i += k
		if i+1 >= len(b) {
			return nil
		}
		if b[i+1] != 'u' {
			i += 2
			continue
		}
		_, n, lone, ok := readEscape(b, i)
		if !ok {
			i += 2
			continue
		}
		if lone {
			path, inName := pathAt(b, i)
			return &Error{Kind: LoneSurrogate, Offset: i, Path: path, inName: inName}
		}
		i += n
	}
}

func utf8Error(b []byte) *Error {
	off := 0
	for off < len(b) {
		r, n := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		off += n
	}
	path, inName := pathAt(b, off)
	return &Error{Kind: InvalidUTF8, Offset: off, Path: path, inName: inName}
}

// pathAt returns the path of the innermost value of the JSON text b that holds byte off,
// or "" when off is in no member's value (or b is not JSON up to there). A byte inside a
// member name gives the path of the object holding it, and inName.
func pathAt(b []byte, off int) (found string, inName bool) {
	var path []frame
	var walk func(i int) (int, bool)
	walk = func(i int) (int, bool) {
		i = skipSpace(b, i)
		if i >= len(b) || len(path) > maxDepth {
			return 0, false
		}
		if off <= i { // the container itself: its opening bracket
			found = formatPath(path)
			return 0, false
		}
		switch b[i] {
		case '{':
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == '}' {
				return i + 1, true
			}
			for {
				if i >= len(b) || b[i] != '"' {
					return 0, false
				}
				end, err := stringEnd(b, i)
				if err != nil || off < end {
					found, inName = formatPath(path), err == nil
					return 0, false
				}
				name, _, ok := unquote(b[i+1 : end-1])
				if !ok {
					return 0, false
				}
				i = skipSpace(b, end)
				if i >= len(b) || b[i] != ':' {
					return 0, false
				}
				path = append(path, frame{name: name})
				i, ok = walk(i + 1)
				path = path[:len(path)-1]
				if !ok {
					return 0, false
				}
				i = skipSpace(b, i)
				if i >= len(b) || b[i] != ',' {
					return i + 1, i < len(b) && b[i] == '}'
				}
				i = skipSpace(b, i+1)
			}
		case '[':
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == ']' {
				return i + 1, true
			}
			for n := 0; ; n++ {
				path = append(path, frame{index: n})
				var ok bool
				i, ok = walk(i)
				path = path[:len(path)-1]
				if !ok {
					return 0, false
				}
				i = skipSpace(b, i)
				if i >= len(b) || b[i] != ',' {
					return i + 1, i < len(b) && b[i] == ']'
				}
				i++
			}
		}
		end, err := skipValue(b, i)
		if err != nil || off < end {
			found = formatPath(path)
			return 0, false
		}
		return end, true
	}
	walk(0)
	return found, inName
}
