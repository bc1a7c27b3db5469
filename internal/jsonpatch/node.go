package jsonpatch

// node is a JSON value that Apply decodes only as far as the patch walks into it: a
// value no operation touches stays its compact bytes (a sub-slice of the input, never
// written to), and is copied to the output as it is. That keeps Apply on a 1 MiB
// document with one changed leaf to a few scans and one copy.
type node struct {
	raw  []byte // kind 0: the value's compact JSON
	kind byte   // 0: raw; '{': an expanded object (keys, vals); '[': an expanded array (vals)
	keys [][]byte
	vals []*node
}

// expand decodes one level of n, if n is a raw object or array; it reports whether n is
// a container.
func (n *node) expand() bool {
	if n.kind != 0 {
		return true
	}
	switch n.raw[0] {
	case '{':
		ms := appendMembers(nil, n.raw)
		slab := make([]node, len(ms))
		n.keys = make([][]byte, len(ms))
		n.vals = make([]*node, len(ms))
		for i, m := range ms {
			n.keys[i] = m.key
			slab[i].raw = m.val
			n.vals[i] = &slab[i]
		}
	case '[':
		es := appendElements(nil, n.raw)
		slab := make([]node, len(es))
		n.vals = make([]*node, len(es))
		for i, e := range es {
			slab[i].raw = e
			n.vals[i] = &slab[i]
		}
	default:
		return false
	}
	n.kind = n.raw[0]
	n.raw = nil
	return true
}

// find is the index of the member named name, -1 if there is none. With a name given
// twice (which a valid document may have), the last one counts, as JSON.parse and
// encoding/json read it.
func (n *node) find(name string) int {
	for i := len(n.keys) - 1; i >= 0; i-- {
		if keyIs(n.keys[i], name) {
			return i
		}
	}
	return -1
}

// dropEarlier removes the members named name before index i (copies a reader never sees,
// which an operation on the name must not uncover), and returns i's new index.
func (n *node) dropEarlier(name string, i int) int {
	for j := i - 1; j >= 0; j-- {
		if keyIs(n.keys[j], name) {
			n.removeAt(j)
			i--
		}
	}
	return i
}

func (n *node) removeAt(i int) {
	if n.kind == '{' {
		n.keys = append(n.keys[:i], n.keys[i+1:]...)
	}
	n.vals = append(n.vals[:i], n.vals[i+1:]...)
}

func (n *node) insertAt(i int, v *node) {
	n.vals = append(n.vals, nil)
	copy(n.vals[i+1:], n.vals[i:])
	n.vals[i] = v
}

// clone is a copy of n that shares only raw bytes (which nobody writes to).
func (n *node) clone() *node {
	c := *n
	if n.kind != 0 {
		c.keys = append([][]byte(nil), n.keys...)
		c.vals = make([]*node, len(n.vals))
		for i, v := range n.vals {
			c.vals[i] = v.clone()
		}
	}
	return &c
}

// size is the length of appendTo's output, so the output is allocated once.
func (n *node) size() int {
	switch n.kind {
	case '{':
		s := 2 + len(n.vals)
		for i, v := range n.vals {
			s += len(n.keys[i]) + 3 + v.size()
		}
		return s
	case '[':
		s := 2 + len(n.vals)
		for _, v := range n.vals {
			s += v.size()
		}
		return s
	}
	return len(n.raw)
}

// appendTo appends n's compact JSON.
func (n *node) appendTo(dst []byte) []byte {
	switch n.kind {
	case '{':
		dst = append(dst, '{')
		for i, v := range n.vals {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, n.keys[i]...)
			dst = append(dst, '"', ':')
			dst = v.appendTo(dst)
		}
		return append(dst, '}')
	case '[':
		dst = append(dst, '[')
		for i, v := range n.vals {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = v.appendTo(dst)
		}
		return append(dst, ']')
	}
	return append(dst, n.raw...)
}

// bytes is n's compact JSON, without copying when n is raw.
func (n *node) bytes() []byte {
	if n.kind == 0 {
		return n.raw
	}
	return n.appendTo(make([]byte, 0, n.size()))
}

// rawKey is name as a member name body in JSON (escaped, no quotes).
func rawKey(name string) []byte {
	return appendQuoted(nil, name)
}
