package jsonpatch

import "fmt"

// Project returns the projection of the JSON document doc on the JSON Pointers: the
// document a window that selected those paths holds. For each pointer it keeps the value
// at that pointer, at the same location, and every object above it keeps only the
// members on a selected path. A pointer that walks into an array keeps the whole array
// at that point (selection stops at the first array). A pointer whose target does not
// exist contributes nothing. A document that is not an object is kept whole, as is any
// document when a pointer is "". Member order is the document's. The result is compact
// JSON that shares no memory with doc. A bad pointer is an *Error of Kind Malformed.
func Project(doc []byte, pointers []string) ([]byte, error) {
	c, err := compactValid(doc)
	if err != nil {
		return nil, &Error{Kind: Malformed, Index: -1, Msg: "the document is " + err.Error()}
	}
	root := &selection{}
	for _, s := range pointers {
		p, err := ParsePointer(s)
		if err != nil {
			return nil, &Error{Kind: Malformed, Index: -1, Path: s, Msg: fmt.Sprintf("projection: %v", err)}
		}
		root.add(p)
	}
	if c[0] != '{' || root.whole {
		return append([]byte(nil), c...), nil
	}
	out, _ := root.project(make([]byte, 0, 64), c)
	return out, nil
}

// selection is the tree of selected paths below one object.
type selection struct {
	whole    bool // a pointer ends here: keep the value whole
	children map[string]*selection
}

func (s *selection) add(p Pointer) {
	for _, tok := range p {
		if s.whole {
			return
		}
		if s.children == nil {
			s.children = map[string]*selection{}
		}
		next := s.children[tok]
		if next == nil {
			next = &selection{}
			s.children[tok] = next
		}
		s = next
	}
	s.whole = true
	s.children = nil
}

// project appends the projection of the compact object obj on s, and reports whether it
// kept any member.
func (s *selection) project(dst []byte, obj []byte) ([]byte, bool) {
	ms := appendMembers(nil, obj)
	// A repeated name: the last member counts, kept where the name first appears.
	type kept struct {
		key []byte
		sel *selection
		val []byte
	}
	var picks []kept
	at := map[string]int{}
	for _, m := range ms {
		k := keyString(m.key)
		sel := s.children[k]
		if sel == nil {
			continue
		}
		if i, ok := at[k]; ok {
			picks[i].val = m.val
			continue
		}
		at[k] = len(picks)
		picks = append(picks, kept{m.key, sel, m.val})
	}
	start := len(dst)
	dst = append(dst, '{')
	any := false
	for _, p := range picks {
		mark := len(dst)
		if any {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, p.key...)
		dst = append(dst, '"', ':')
		switch {
		case p.sel.whole || p.val[0] == '[':
			dst = append(dst, p.val...)
		case p.val[0] == '{':
			var keptAny bool
			if dst, keptAny = p.sel.project(dst, p.val); !keptAny {
				dst = dst[:mark]
				continue
			}
		default: // a pointer through a string, number, boolean or null: no target
			dst = dst[:mark]
			continue
		}
		any = true
	}
	if !any {
		return append(dst[:start], '{', '}'), false
	}
	return append(dst, '}'), true
}
