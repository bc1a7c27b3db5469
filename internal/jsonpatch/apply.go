package jsonpatch

import "fmt"

// Apply applies the patch to the JSON document doc and returns the new document as
// compact JSON: every operation in order, or none (the first failing operation is
// returned as an *Error with its index; the document is then unchanged). doc and p are
// never modified, and the result shares no memory with them. Values keep the bytes
// they were written with: a number is never rounded through float64, member order is
// kept, and new members go last.
//
// Its cost on a large document and a small patch is one validation pass over doc
// (compactValid), a scan up to each change that skips what it does not enter, and one
// copy per operation (splice.go); ApplyValid drops the validation pass.
func Apply(doc []byte, p Patch) ([]byte, error) {
	c, err := compactValid(doc)
	if err != nil {
		return nil, &Error{Kind: Malformed, Index: -1, Msg: "the document is " + err.Error()}
	}
	return applyCompact(c, p, true, false)
}

// ApplyValid is Apply for a document already known to be compact, valid JSON (what
// Apply or json.Compact returned, for instance a window's own previous state): it skips
// Apply's validation pass over the whole document, about half of Apply's time for a
// one-leaf patch on 1 MiB. The precondition is the caller's: on a document that is not
// compact, valid JSON the result is unspecified (wrong bytes, or a panic), so anything
// that came from outside goes through Apply.
func ApplyValid(doc []byte, p Patch) ([]byte, error) {
	if len(doc) == 0 {
		return nil, &Error{Kind: Malformed, Index: -1, Msg: "the document is empty: not valid JSON"}
	}
	return applyCompact(doc, p, true, false)
}

// ApplyValidUniqueNames is ApplyValid for a document also known to repeat no member name
// in any object (RepeatedNames(doc) is false; for instance the output of a patch whose
// values repeat none, applied to such a document: Apply adds no repeat). Without
// that knowledge, a scan for a member reads the rest of its object, since a later member
// of the same name would be the one that counts; with it, each scan stops at the member
// it looks for, and inside an array at the element: a third less time for a leaf in the
// middle of a 1 MiB array, far less for one near its start. When a value of the patch
// repeats a name, it is ApplyValid. The precondition is the caller's, as ApplyValid's.
func ApplyValidUniqueNames(doc []byte, p Patch) ([]byte, error) {
	if len(doc) == 0 {
		return nil, &Error{Kind: Malformed, Index: -1, Msg: "the document is empty: not valid JSON"}
	}
	return applyCompact(doc, p, true, !p.RepeatedNames())
}

// applyCompact applies p to the compact, valid doc, each operation spliced (splice.go)
// when it can be and with the node path otherwise; with splice false, always with the
// node path (the reference the tests compare the splice path with). unique: no object
// of doc or of p's values repeats a member name (ApplyValidUniqueNames).
func applyCompact(doc []byte, p Patch, splicing, unique bool) ([]byte, error) {
	b := doc
	owned := false // b is a buffer of ours, not doc
	var spare []byte
	for i := range p {
		op := &p[i]
		var out []byte
		sp, unchanged, ok := splice{}, false, false
		if splicing {
			sp, unchanged, ok = spliceOp(b, op, unique)
		}
		if ok {
			if unchanged {
				continue
			}
			out = sp.write(spare, b)
		} else {
			root, e := applyOp(&node{raw: b}, op)
			if e != nil {
				e.Index = i
				e.Path = op.PathText
				if e.Path == "" {
					e.Path = op.Path.String()
				}
				return nil, e
			}
			if n := root.size(); cap(spare) < n {
				spare = make([]byte, 0, n)
			}
			out = root.appendTo(spare[:0])
		}
		// Two buffers in turn: the next operation writes over the one before b.
		if owned {
			spare = b
		} else {
			spare = nil
		}
		b, owned = out, true
	}
	if !owned {
		return append(make([]byte, 0, len(b)), b...), nil
	}
	return b, nil
}

func fail(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

func valueNode(op *Op) (*node, *Error) {
	if op.checked {
		return &node{raw: op.Value}, nil
	}
	if op.Value == nil {
		return nil, fail(Malformed, "%s needs a value (any JSON value, null included), and it is missing", op.Op)
	}
	v, err := compactValid(op.Value)
	if err != nil {
		return nil, fail(Malformed, "the value is %v", err)
	}
	return &node{raw: v}, nil
}

func applyOp(root *node, op *Op) (*node, *Error) {
	switch op.Op {
	case "add":
		v, err := valueNode(op)
		if err != nil {
			return nil, err
		}
		return add(root, op.Path, v)
	case "remove":
		if len(op.Path) == 0 {
			return nil, fail(NotApplicable, "remove cannot take the whole document: replace it instead")
		}
		_, err := remove(root, op.Path)
		return root, err
	case "replace":
		v, err := valueNode(op)
		if err != nil {
			return nil, err
		}
		if len(op.Path) == 0 {
			return v, nil
		}
		parent, last, err := parentOf(root, op.Path, "replace")
		if err != nil {
			return nil, err
		}
		i, err := existing(parent, last, op.Path, "replace")
		if err != nil {
			return nil, err
		}
		if parent.kind == '{' {
			i = parent.dropEarlier(last, i)
		}
		parent.vals[i] = v
		return root, nil
	case "move":
		if op.From.isProperPrefix(op.Path) {
			return nil, fail(NotApplicable, "move cannot put %q inside itself: move it elsewhere, or copy it", op.From.String())
		}
		if _, err := get(root, op.From, "from"); err != nil {
			return nil, err
		}
		if len(op.From) == len(op.Path) && !op.From.isProperPrefix(op.Path) && equalPointers(op.From, op.Path) {
			return root, nil
		}
		if len(op.From) == 0 {
			return nil, fail(NotApplicable, "move cannot take the whole document away (from is \"\")")
		}
		v, err := remove(root, op.From)
		if err != nil {
			return nil, err
		}
		return add(root, op.Path, v)
	case "copy":
		v, err := get(root, op.From, "from")
		if err != nil {
			return nil, err
		}
		return add(root, op.Path, v.clone())
	case "test":
		want, err := valueNode(op)
		if err != nil {
			return nil, err
		}
		got, err := get(root, op.Path, "path")
		if err != nil {
			err.Kind = TestFailed
			return nil, err
		}
		if !equalJSON(got.bytes(), want.raw) {
			return nil, fail(TestFailed, "test failed: the value at %q is not the one given", op.Path.String())
		}
		return root, nil
	}
	return nil, fail(Malformed, "unknown op %q: use one of add, remove, replace, move, copy, test (lower case)", op.Op)
}

func equalPointers(a, b Pointer) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// get is the node at p.
func get(root *node, p Pointer, which string) (*node, *Error) {
	n := root
	for k, tok := range p {
		if !n.expand() {
			return nil, fail(NotApplicable, "%s %q does not exist: %q is not an object or array", which, p.String(), Pointer(p[:k]).String())
		}
		i, err := existing(n, tok, p[:k+1], which)
		if err != nil {
			return nil, err
		}
		n = n.vals[i]
	}
	return n, nil
}

// parentOf is the container holding p's target, expanded, and the target's token.
func parentOf(root *node, p Pointer, opName string) (*node, string, *Error) {
	parent, err := get(root, p[:len(p)-1], "path")
	if err != nil {
		err.Msg = fmt.Sprintf("%s: the parent of %q does not exist (%s)", opName, p.String(), err.Msg)
		return nil, "", err
	}
	if !parent.expand() {
		return nil, "", fail(NotApplicable, "%s: %q is not an object or array, so %q cannot be in it", opName, Pointer(p[:len(p)-1]).String(), p.String())
	}
	return parent, p[len(p)-1], nil
}

// existing is the index in the expanded container n of the member or element tok.
func existing(n *node, tok string, at Pointer, which string) (int, *Error) {
	if n.kind == '{' {
		i := n.find(tok)
		if i < 0 {
			return 0, fail(NotApplicable, "%s %q does not exist: the object has no member %q", which, at.String(), tok)
		}
		return i, nil
	}
	i, err := arrayIndex(tok, len(n.vals), len(n.vals)-1, false)
	if err != nil {
		return 0, fail(NotApplicable, "%s %q does not exist: %v", which, at.String(), err)
	}
	return i, nil
}

func add(root *node, p Pointer, v *node) (*node, *Error) {
	if len(p) == 0 {
		return v, nil
	}
	parent, last, err := parentOf(root, p, "add")
	if err != nil {
		return nil, err
	}
	if parent.kind == '{' {
		if i := parent.find(last); i >= 0 {
			i = parent.dropEarlier(last, i)
			parent.vals[i] = v
			return root, nil
		}
		parent.keys = append(parent.keys, rawKey(last))
		parent.vals = append(parent.vals, v)
		return root, nil
	}
	i, e := arrayIndex(last, len(parent.vals), len(parent.vals), true)
	if e != nil {
		return nil, fail(NotApplicable, "add at %q: %v (add takes 0..%d, or \"-\" to append)", p.String(), e, len(parent.vals))
	}
	parent.insertAt(i, v)
	return root, nil
}

// remove takes the value at p (not the root) out and returns it.
func remove(root *node, p Pointer) (*node, *Error) {
	parent, last, err := parentOf(root, p, "remove")
	if err != nil {
		return nil, err
	}
	i, err := existing(parent, last, p, "path")
	if err != nil {
		return nil, err
	}
	if parent.kind == '{' {
		i = parent.dropEarlier(last, i)
	}
	v := parent.vals[i]
	parent.removeAt(i)
	return v, nil
}
