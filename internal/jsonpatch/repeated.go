package jsonpatch

import (
	"bytes"

	"github.com/state-sync/state-sync/internal/jsonscan"
)

// RepeatedNames reports whether some object in the valid JSON document doc has a member
// name twice (compared as decoded, so "a" and "\u0061" are one name). Diff needs unique
// names (see Diff), and a window reads a repeated name as its last member, as JSON.parse
// does, so a patch made or applied where a name repeats can leave a window with other
// data than the document: the sidecar sends such documents in full. One pass; objects of
// up to 16 members whose names have no escape are checked without allocating.
func RepeatedNames(doc []byte) bool {
	// names holds the raw names of every open object, innermost last: only the innermost
	// object gets names, and closing it drops its own.
	names := make([][]byte, 0, 64)
	var stack []openValue
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '"':
			end, escaped := stringEnd(doc, i)
			if n := len(stack); n > 0 && stack[n-1].atName {
				top := &stack[n-1]
				top.atName = false
				raw := doc[i+1 : max(i+1, end-1)]
				if top.seen == nil && len(names)-top.start < 16 && !escaped {
					for _, name := range names[top.start:] {
						if bytes.Equal(name, raw) {
							return true
						}
					}
					names = append(names, raw)
				} else if top.addToSet(raw, names[top.start:]) {
					return true
				}
			}
			i = end - 1
		case '{':
			stack = append(stack, openValue{atName: true, start: len(names)})
		case '[':
			stack = append(stack, openValue{array: true, start: len(names)})
		case '}', ']':
			names = names[:stack[len(stack)-1].start]
			stack = stack[:len(stack)-1]
		case ',':
			if n := len(stack); n > 0 && !stack[n-1].array {
				stack[n-1].atName = true
			}
		}
	}
	return false
}

// stringEnd returns the index just past the string that opens at doc[i], and whether it
// has an escape. Most strings of a state are short (names, ids, tags): they are read
// here byte by byte, which costs less than a call to bytes.IndexByte per quote; longer
// ones go to jsonscan.SkipString, whose IndexByte pays off past a few dozen bytes.
func stringEnd(doc []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(doc) && j <= i+32; j++ {
		switch doc[j] {
		case '"':
			return j + 1, escaped
		case '\\':
			escaped = true
			j++ // the escaped byte, a quote maybe
		}
	}
	end = jsonscan.SkipString(doc, i)
	return end, escaped || bytes.IndexByte(doc[i+1:max(i+1, end-1)], '\\') >= 0
}

// openValue is what RepeatedNames knows of an object or array not yet closed.
type openValue struct {
	array  bool
	atName bool                // the next string is a member name
	start  int                 // where its names begin in RepeatedNames' names
	seen   map[string]struct{} // its names, decoded, once past 16 or one has an escape
}

// addToSet records a raw name in the object's set (made from its listed names first)
// and reports whether the object had it already.
func (o *openValue) addToSet(raw []byte, listed [][]byte) bool {
	if o.seen == nil {
		o.seen = make(map[string]struct{}, 2*len(listed)+1)
		for _, name := range listed {
			o.seen[string(name)] = struct{}{}
		}
	}
	name := keyString(raw)
	if _, ok := o.seen[name]; ok {
		return true
	}
	o.seen[name] = struct{}{}
	return false
}

// RepeatedNames reports whether a value of the patch has a member name twice. Apply
// repeats no name that the document and the patch's values did not (FuzzApply checks
// it): add on an existing member replaces it, and every value it writes comes from the
// patch or the document. So the result of a patch with false here, applied to a
// document without repeats, has none either, and need not be scanned for them.
func (p Patch) RepeatedNames() bool {
	for i := range p {
		if len(p[i].Value) > 0 && RepeatedNames(p[i].Value) {
			return true
		}
	}
	return false
}
