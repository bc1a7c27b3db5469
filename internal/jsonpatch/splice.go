package jsonpatch

import (
	"math"
)

// The splice path: most operations change one value of a large document (a leaf
// replaced, an element added or removed). For those, Apply finds the byte range of the
// target by scanning the compact document, skipping every subtree it does not enter
// without decoding it, and writes the result as head + new bytes + tail: one scan to
// the change and one copy, where the node path (node.go) split every container on the
// way into nodes (the whole 12,355-element array of the bench, to reach one element).
//
// spliceOp handles the common, unambiguous cases and reports false for everything else
// (an error of any kind, a member name given twice in the object it changes, the whole
// document as path, an index it cannot read): the caller then applies that operation
// with the node path on the same buffer, so errors, their wording and the rare cases
// stay exactly the node path's. TestSpliceMatchesNodes and FuzzSpliceMatchesNodes check
// that both paths give the same bytes.
//
// With unique set (ApplyValidUniqueNames: no object of the document or of a value repeats
// a member name), a scan stops at the member it looks for: without it, the rest of the
// object must be read, since a later member of the same name would be the one that counts.

// splice is a planned change of b: b[start:end] replaced by the concatenation of parts.
type splice struct {
	start, end int
	parts      [3][]byte
}

// write appends b with s applied to dst[:0] (dst's memory reused when large enough).
func (s *splice) write(dst, b []byte) []byte {
	n := len(b) - (s.end - s.start)
	for _, p := range s.parts {
		n += len(p)
	}
	if cap(dst) < n {
		dst = make([]byte, 0, n)
	}
	dst = append(dst[:0], b[:s.start]...)
	for _, p := range s.parts {
		dst = append(dst, p...)
	}
	return append(dst, b[s.end:]...)
}

var comma = []byte{','}

// locate is the byte range [start, end) of the value at p in the compact, valid b, with
// a repeated member name read as its last member (as the node path's get). ok is false
// when there is no such value.
func locate(b []byte, p Pointer, unique bool) (start, end int, ok bool) {
	s, _, ok := walkAhead(b, p, "", unique)
	if !ok {
		return 0, 0, false
	}
	return s, skipCompact(b, s), true
}

// elementHint is where element idx of an array lies, found while the array was skipped
// anyway (to find the end of the member holding it): the splice path's scan then reads
// the bytes before the change once, not twice.
type elementHint struct {
	known  bool
	pos    int // element idx's start; or, when !exists, the array's ']' if it has idx elements, else -1
	exists bool
}

// walkAhead is the start of the value at p, and when ahead is an array index and the
// value at p is an array that is an object member's value, the hint for element ahead
// (parent's case: the container of the target, and the target).
func walkAhead(b []byte, p Pointer, ahead string, unique bool) (s int, hint elementHint, ok bool) {
	for k, tok := range p {
		next := ahead
		if k+1 < len(p) {
			next = p[k+1]
		}
		want, wantOK := fastIndex(next)
		if !wantOK {
			want = -1
		}
		switch b[s] {
		case '{':
			m, found := lastMember(b, s, tok, want, unique)
			if !found {
				return 0, hint, false
			}
			s, hint = m.vs, m.hint
		case '[':
			idx, ok := fastIndex(tok)
			if !ok {
				return 0, hint, false
			}
			if !hint.known {
				hint.pos, hint.exists = element(b, s, idx)
			}
			if !hint.exists {
				return 0, hint, false
			}
			s, hint = hint.pos, elementHint{}
		default:
			return 0, hint, false
		}
	}
	return s, hint, true
}

// memberAt is where a member of a compact object lies: its name's opening quote (ks),
// its value (vs, ve), whether another member of the object has the same name, and the
// hint for element want of its value when that is an array. ve is -1 when a unique
// scan noted the hint and stopped inside the value: walkAhead, which asks for hints,
// needs only vs.
type memberAt struct {
	ks, vs, ve int
	dup        bool
	hint       elementHint
}

// lastMember finds the last member named name in the object starting at b[s]. The whole
// object is scanned (a later member of the same name wins), values skipped undecoded;
// with want >= 0, a matching member's array value is skipped element by element, noting
// where element want lies. With unique (the object repeats no name), the scan stops at
// the matching member, and inside its array value at element want.
func lastMember(b []byte, s int, name string, want int, unique bool) (m memberAt, found bool) {
	i := s + 1
	if b[i] == '}' {
		return m, false
	}
	for {
		kend := skipStringCompact(b, i)
		vs := kend + 1
		var ve int
		var hint elementHint
		match := keyIs(b[i+1:kend-1], name)
		if match && unique {
			m = memberAt{ks: i, vs: vs, ve: -1}
			if want >= 0 && vs < len(b) && b[vs] == '[' {
				m.hint.pos, m.hint.exists = element(b, vs, want)
				m.hint.known = true
			} else {
				m.ve = skipCompact(b, vs)
			}
			return m, true
		}
		if match && want >= 0 && vs < len(b) && b[vs] == '[' {
			ve, hint.pos, hint.exists = skipArray(b, vs, want)
			hint.known = true
		} else {
			ve = skipCompact(b, vs)
		}
		if match {
			m = memberAt{ks: i, vs: vs, ve: ve, dup: found, hint: hint}
			found = true
		}
		if ve >= len(b) || b[ve] != ',' {
			return m, found
		}
		i = ve + 1
	}
}

// element is the start of element idx of the array starting at b[s]. When the array has
// fewer elements, exists is false and pos is the index of its closing ']' if it has
// exactly idx elements (where add inserts), or -1.
func element(b []byte, s, idx int) (pos int, exists bool) {
	i := s + 1
	if b[i] == ']' {
		if idx == 0 {
			return i, false
		}
		return -1, false
	}
	for k := 0; ; k++ {
		if k == idx {
			return i, true
		}
		e := skipCompact(b, i)
		if e >= len(b) || b[e] != ',' {
			if k+1 == idx {
				return e, false
			}
			return -1, false
		}
		i = e + 1
	}
}

// skipArray is skipCompact of the array starting at b[s], and element's answer for idx.
func skipArray(b []byte, s, idx int) (end, pos int, exists bool) {
	i := s + 1
	pos = -1
	if i < len(b) && b[i] == ']' {
		if idx == 0 {
			pos = i
		}
		return i + 1, pos, false
	}
	for k := 0; ; k++ {
		if k == idx {
			pos, exists = i, true
		}
		e := skipCompact(b, i)
		if e >= len(b) || b[e] != ',' {
			if k+1 == idx {
				pos = e
			}
			return min(e+1, len(b)), pos, exists
		}
		i = e + 1
	}
}

// fastIndex reads an RFC 6901 array index as arrayIndex accepts it (digits, no leading
// zero, at most 2^31); ok is false for anything else ("-" included), which the node path
// then words. It does not allocate: walk asks it of every token.
func fastIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 10 || len(tok) > 1 && tok[0] == '0' {
		return 0, false
	}
	v := 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, v <= math.MaxInt32
}

// spliceValue is the operation's value, compact and valid, or false (the node path
// then words the error).
func spliceValue(op *Op) ([]byte, bool) {
	v, err := valueNode(op)
	if err != nil {
		return nil, false
	}
	return v.raw, true
}

// spliceOp plans op on the compact, valid b. ok false: apply op with the node path.
// unchanged: op changes nothing (a test that passed, a move onto itself).
func spliceOp(b []byte, op *Op, unique bool) (sp splice, unchanged, ok bool) {
	if len(op.Path) == 0 {
		return sp, false, false
	}
	switch op.Op {
	case "replace":
		v, ok := spliceValue(op)
		if !ok {
			return sp, false, false
		}
		return spliceReplace(b, op.Path, v, unique)
	case "add":
		v, ok := spliceValue(op)
		if !ok {
			return sp, false, false
		}
		sp, ok = spliceAdd(b, op.Path, v, unique)
		return sp, false, ok
	case "remove":
		sp, ok = spliceRemove(b, op.Path, unique)
		return sp, false, ok
	case "test":
		want, ok := spliceValue(op)
		if !ok {
			return sp, false, false
		}
		s, e, found := locate(b, op.Path, unique)
		if !found || !equalJSON(b[s:e], want) {
			return sp, false, false
		}
		return sp, true, true
	case "copy":
		s, e, found := locate(b, op.From, unique)
		if !found {
			return sp, false, false
		}
		// The value is b's bytes; write copies them before anything else is written.
		sp, ok = spliceAdd(b, op.Path, b[s:e], unique)
		return sp, false, ok
	}
	return sp, false, false // move (two changes) and unknown ops: the node path
}

// parent is the start of the container holding p's target (p not empty), and the
// target's position if the container is an array whose position was noted on the way.
func parent(b []byte, p Pointer, unique bool) (int, elementHint, bool) {
	s, hint, ok := walkAhead(b, p[:len(p)-1], p[len(p)-1], unique)
	if !ok || b[s] != '{' && b[s] != '[' {
		return 0, hint, false
	}
	return s, hint, true
}

// arrayTarget is element idx of the array at b[s], from the hint when there is one.
func arrayTarget(b []byte, s, idx int, hint elementHint) (pos int, exists bool) {
	if hint.known {
		return hint.pos, hint.exists
	}
	return element(b, s, idx)
}

func spliceReplace(b []byte, p Pointer, v []byte, unique bool) (sp splice, unchanged, ok bool) {
	s, hint, ok := parent(b, p, unique)
	if !ok {
		return sp, false, false
	}
	last := p[len(p)-1]
	if b[s] == '{' {
		m, found := lastMember(b, s, last, -1, unique)
		if !found || m.dup {
			return sp, false, false
		}
		return splice{start: m.vs, end: m.ve, parts: [3][]byte{v}}, false, true
	}
	idx, ok := fastIndex(last)
	if !ok {
		return sp, false, false
	}
	e, exists := arrayTarget(b, s, idx, hint)
	if !exists {
		return sp, false, false
	}
	return splice{start: e, end: skipCompact(b, e), parts: [3][]byte{v}}, false, true
}

func spliceAdd(b []byte, p Pointer, v []byte, unique bool) (sp splice, ok bool) {
	s, hint, ok := parent(b, p, unique)
	if !ok {
		return sp, false
	}
	last := p[len(p)-1]
	if b[s] == '{' {
		m, found := lastMember(b, s, last, -1, unique)
		if m.dup {
			return sp, false
		}
		if found {
			return splice{start: m.vs, end: m.ve, parts: [3][]byte{v}}, true
		}
		end := skipCompact(b, s) - 1 // the closing '}'
		member := append(append(append([]byte{'"'}, rawKey(last)...), '"', ':'), v...)
		if end == s+1 {
			return splice{start: end, end: end, parts: [3][]byte{member}}, true
		}
		return splice{start: end, end: end, parts: [3][]byte{comma, member}}, true
	}
	var pos int
	if last == "-" {
		pos = skipCompact(b, s) - 1 // the closing ']'
	} else {
		idx, ok := fastIndex(last)
		if !ok {
			return sp, false
		}
		var exists bool
		pos, exists = arrayTarget(b, s, idx, hint)
		if exists {
			return splice{start: pos, end: pos, parts: [3][]byte{v, comma}}, true
		}
		if pos < 0 {
			return sp, false
		}
	}
	if pos == s+1 { // an empty array
		return splice{start: pos, end: pos, parts: [3][]byte{v}}, true
	}
	return splice{start: pos, end: pos, parts: [3][]byte{comma, v}}, true
}

func spliceRemove(b []byte, p Pointer, unique bool) (sp splice, ok bool) {
	s, hint, ok := parent(b, p, unique)
	if !ok {
		return sp, false
	}
	last := p[len(p)-1]
	var start, end int
	if b[s] == '{' {
		m, found := lastMember(b, s, last, -1, unique)
		if !found || m.dup {
			return sp, false
		}
		start, end = m.ks, m.ve
	} else {
		idx, ok := fastIndex(last)
		if !ok {
			return sp, false
		}
		e, exists := arrayTarget(b, s, idx, hint)
		if !exists {
			return sp, false
		}
		start, end = e, skipCompact(b, e)
	}
	switch {
	case b[start-1] == ',': // not the first: take the comma before it
		start--
	case b[end] == ',': // the first of several: take the comma after it
		end++
	}
	return splice{start: start, end: end}, true
}
