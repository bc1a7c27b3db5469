package jsonpatch

import (
	"bytes"
	"strconv"

	"github.com/state-sync/state-sync/internal/jsonscan"
)

// Diff returns an RFC 6902 patch, as compact JSON, that turns the JSON document from
// into to: Apply(from, Diff(from, to)) is to (semantically equal JSON; exactly to's
// bytes, compacted, wherever a value changed). It is built to be small and fast where
// the sidecar uses it, a large document with a few changed leaves:
//
//   - Subtrees are compared as bytes first, and only a subtree whose bytes differ is
//     walked into, so an unchanged sibling costs one memcmp. Where the two documents
//     differ inside one member or element only (their common head and tail of bytes
//     say so), Diff reads from only up to that member and to only inside it.
//   - A changed leaf is one "replace"; object members are "add"ed and "remove"d by name;
//     arrays lose their common head and tail of elements, then pair the rest element by
//     element, with "add" or "remove" for the difference in length.
//   - Wherever the operations for a container come to more bytes than replacing the
//     container whole, the container is replaced whole.
//
// Two values that are equal but spelt differently (1.0 and 1, "\u0041" and "A", other
// whitespace) may get a "replace"; member order alone never does.
//
// Diff trusts that from and to are JSON (the sidecar checks documents when they arrive):
// it parses only what it walks into, and checks every value it puts in the patch. Bytes
// it cannot parse where it walks, or a value that is not JSON, are an *Error of Kind
// Malformed; bytes equal in both documents are not read. Member names must be unique
// within each object (RFC 8259 §4: they SHOULD be): with a repeated name, the patch may
// not give to.
func Diff(from, to []byte) ([]byte, error) {
	a, b := trimSpace(from), trimSpace(to)
	if len(a) == 0 || len(b) == 0 {
		return nil, &Error{Kind: Malformed, Index: -1, Msg: "Diff needs two JSON documents, and one is empty"}
	}
	d := differ{out: append(make([]byte, 0, 128), '[')}
	if err := d.value(a, b); err != nil {
		return nil, err
	}
	return append(d.out, ']'), nil
}

type differ struct {
	out  []byte // "[" and the operations so far, each but the first after a ","
	path []byte // the current location as a JSON Pointer, escaped as a JSON string body
}

func notJSON(doc []byte, at int) *Error {
	return &Error{Kind: Malformed, Index: -1, Msg: "Diff: a document is not JSON where the two differ (around byte " + strconv.Itoa(at) + " of a changed value): give Diff valid JSON"}
}

func trimSpace(b []byte) []byte {
	i := jsonscan.SkipSpace(b, 0)
	j := len(b)
	for j > i && (b[j-1] == ' ' || b[j-1] == '\t' || b[j-1] == '\n' || b[j-1] == '\r') {
		j--
	}
	return b[i:j]
}

// value diffs a and b, each one JSON value without whitespace around it.
func (d *differ) value(a, b []byte) error {
	if bytes.Equal(a, b) {
		return nil
	}
	if a[0] == b[0] && (a[0] == '{' || a[0] == '[') {
		if done, err := d.narrow(a, b); done || err != nil {
			return err
		}
		return d.container(a, b)
	}
	return d.op("replace", b)
}

// container diffs two different objects or two different arrays member by member (or
// element by element), or replaces a whole when that is shorter.
func (d *differ) container(a, b []byte) error {
	mark := len(d.out)
	var err error
	if a[0] == '{' {
		err = d.object(a, b)
	} else {
		err = d.array(a, b)
	}
	if err != nil {
		return err
	}
	if len(d.out)-mark <= len(`,{"op":"replace","path":"","value":}`)+len(d.path)+len(b) {
		return nil
	}
	d.out = d.out[:mark]
	return d.op("replace", b)
}

// op appends one operation on d.path; value is nil for remove, and is checked and
// compacted otherwise.
func (d *differ) op(name string, value []byte) error {
	if len(d.out) > 1 {
		d.out = append(d.out, ',')
	}
	d.out = append(d.out, `{"op":"`...)
	d.out = append(d.out, name...)
	d.out = append(d.out, `","path":"`...)
	d.out = append(d.out, d.path...)
	d.out = append(d.out, '"')
	if value != nil {
		c, err := compactValid(value)
		if err != nil {
			return &Error{Kind: Malformed, Index: -1, Msg: "Diff: a value of to is " + err.Error() + ": give Diff valid JSON"}
		}
		d.out = append(d.out, `,"value":`...)
		d.out = append(d.out, c...)
	}
	d.out = append(d.out, '}')
	return nil
}

// pushRaw appends the member name written raw (escaped as in JSON) to d.path and returns
// the length to restore.
func (d *differ) pushRaw(raw []byte) int {
	n := len(d.path)
	if bytes.IndexByte(raw, '\\') >= 0 {
		d.pushName(keyString(raw))
		return n
	}
	d.path = append(d.path, '/')
	for _, c := range raw {
		switch c {
		case '~':
			d.path = append(d.path, '~', '0')
		case '/':
			d.path = append(d.path, '~', '1')
		default:
			d.path = append(d.path, c)
		}
	}
	return n
}

func (d *differ) pushName(name string) int {
	n := len(d.path)
	d.path = append(d.path, '/')
	d.path = appendQuoted(d.path, escapeToken(name))
	return n
}

func (d *differ) pushIndex(i int) int {
	n := len(d.path)
	d.path = append(d.path, '/')
	d.path = strconv.AppendInt(d.path, int64(i), 10)
	return n
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for _, block := range [...]int{4096, 64} {
		for i+block <= n && bytes.Equal(a[i:i+block], b[i:i+block]) {
			i += block
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix is the length of the longest common suffix of a and b.
func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for _, block := range [...]int{4096, 64} {
		for i+block <= n && bytes.Equal(a[len(a)-i-block:len(a)-i], b[len(b)-i-block:len(b)-i]) {
			i += block
		}
	}
	for i < n && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	return i
}

// narrow diffs two containers of one kind in the usual case, where they differ inside
// one value only, without reading the rest of them: the bytes before the change are the
// same in both (so that value starts at the same offset, under the same names and
// indexes), and the bytes after it are the same in both (so are the members after it).
// It reads a up to the change and that value in each, then diffs the two values. It
// reports false, having written nothing, when no single value below the containers
// holds the whole change.
func (d *differ) narrow(a, b []byte) (bool, error) {
	p := commonPrefix(a, b)
	s := commonSuffix(a[p:], b[p:])
	endA, endB := len(a)-s, len(b)-s // the changed bytes are a[p:endA] and b[p:endB]
	var chain []step
	if _, found, err := seek(a, 0, p, &chain, 0); err != nil || !found {
		return false, err
	}
	// The innermost value holding the change in both documents.
	for k := len(chain) - 1; k >= 0; k-- {
		vs := chain[k].start
		veA, veB := jsonscan.SkipValue(a, vs), jsonscan.SkipValue(b, vs)
		if veA <= vs || veB <= vs || endA > veA || endB > veB || len(a)-veA != len(b)-veB {
			continue
		}
		n := len(d.path)
		for _, st := range chain[:k+1] {
			if st.key != nil {
				d.pushRaw(st.key)
			} else {
				d.pushIndex(st.index)
			}
		}
		va, vb := a[vs:veA], b[vs:veB]
		var err error
		switch {
		case bytes.Equal(va, vb): // not reached on valid JSON: the change is inside
		case va[0] == vb[0] && (va[0] == '{' || va[0] == '['):
			err = d.container(va, vb)
		default:
			err = d.op("replace", vb)
		}
		d.path = d.path[:n]
		return true, err
	}
	return false, nil
}

// step is one value on the way from a container down to an offset: its member name as
// written (nil in an array), its index, and where it starts.
type step struct {
	key   []byte
	index int
	start int
}

// seek reads the container at a[i] up to offset p and no further. When the container
// ends before p it returns its end; otherwise found, with the values below it that hold
// p (or end right at p) appended to chain, outermost first.
func seek(a []byte, i, p int, chain *[]step, depth int) (end int, found bool, err error) {
	if depth >= maxDepth {
		return 0, false, notJSON(a, i)
	}
	obj := a[i] == '{'
	j := jsonscan.SkipSpace(a, i+1)
	for index := 0; ; index++ {
		if j >= len(a) {
			return 0, false, notJSON(a, j)
		}
		if a[j] == '}' || a[j] == ']' {
			if j >= p {
				return 0, true, nil // p is in this container, between values
			}
			return j + 1, false, nil
		}
		var key []byte
		if obj {
			if a[j] != '"' {
				return 0, false, notJSON(a, j)
			}
			kend := jsonscan.SkipString(a, j)
			if kend >= len(a) {
				return 0, false, notJSON(a, j)
			}
			if kend > p {
				return 0, true, nil // p is in this member's name
			}
			key = a[j+1 : kend-1]
			if j = jsonscan.SkipSpace(a, kend); j >= len(a) || a[j] != ':' {
				return 0, false, notJSON(a, j)
			}
			j = jsonscan.SkipSpace(a, j+1)
		}
		vs := j
		if vs > p {
			return 0, true, nil
		}
		if vs >= len(a) {
			return 0, false, notJSON(a, vs)
		}
		var ve int
		*chain = append(*chain, step{key: key, index: index, start: vs})
		if a[vs] == '{' || a[vs] == '[' {
			e, found, err := seek(a, vs, p, chain, depth+1)
			if err != nil || found {
				return 0, found, err
			}
			ve = e
		} else {
			if ve = jsonscan.SkipValue(a, vs); ve <= vs {
				return 0, false, notJSON(a, vs)
			}
			if ve >= p {
				return 0, true, nil
			}
		}
		*chain = (*chain)[:len(*chain)-1]
		j = jsonscan.SkipSpace(a, ve)
		if j < len(a) && a[j] == ',' {
			j = jsonscan.SkipSpace(a, j+1)
		} else if j < len(a) && a[j] != '}' && a[j] != ']' {
			return 0, false, notJSON(a, j)
		}
	}
}

// members appends the members of the object obj (obj[0] is '{'; whitespace allowed).
func members(dst []member, obj []byte) ([]member, error) {
	i := jsonscan.SkipSpace(obj, 1)
	if i < len(obj) && obj[i] == '}' {
		return dst, nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return nil, notJSON(obj, i)
		}
		kend := jsonscan.SkipString(obj, i)
		j := jsonscan.SkipSpace(obj, kend)
		if kend >= len(obj) || j >= len(obj) || obj[j] != ':' {
			return nil, notJSON(obj, i)
		}
		vs := jsonscan.SkipSpace(obj, j+1)
		ve := jsonscan.SkipValue(obj, vs)
		if ve <= vs || ve >= len(obj) {
			return nil, notJSON(obj, vs)
		}
		dst = append(dst, member{key: obj[i+1 : kend-1], val: obj[vs:ve]})
		i = jsonscan.SkipSpace(obj, ve)
		switch {
		case i < len(obj) && obj[i] == ',':
			i = jsonscan.SkipSpace(obj, i+1)
		case i == len(obj)-1 && obj[i] == '}':
			return dst, nil
		default:
			return nil, notJSON(obj, i)
		}
	}
}

// elements appends the elements of the array arr (arr[0] is '['; whitespace allowed).
func elements(dst [][]byte, arr []byte) ([][]byte, error) {
	i := jsonscan.SkipSpace(arr, 1)
	if i < len(arr) && arr[i] == ']' {
		return dst, nil
	}
	for {
		ve := jsonscan.SkipValue(arr, i)
		if ve <= i || ve >= len(arr) {
			return nil, notJSON(arr, i)
		}
		dst = append(dst, arr[i:ve])
		i = jsonscan.SkipSpace(arr, ve)
		switch {
		case i < len(arr) && arr[i] == ',':
			i = jsonscan.SkipSpace(arr, i+1)
		case i == len(arr)-1 && arr[i] == ']':
			return dst, nil
		default:
			return nil, notJSON(arr, i)
		}
	}
}

func (d *differ) object(a, b []byte) error {
	ma, err := members(nil, a)
	if err != nil {
		return err
	}
	mb, err := members(nil, b)
	if err != nil {
		return err
	}
	if sameNames(ma, mb) { // the usual case: no maps needed
		for i := range ma {
			if bytes.Equal(ma[i].val, mb[i].val) {
				continue
			}
			n := d.pushRaw(ma[i].key)
			err := d.value(ma[i].val, mb[i].val)
			d.path = d.path[:n]
			if err != nil {
				return err
			}
		}
		return nil
	}
	ia, ib := lastIndex(ma), lastIndex(mb)
	for i, m := range ma {
		k := keyString(m.key)
		if ia[k] != i {
			continue
		}
		if _, ok := ib[k]; !ok {
			n := d.pushName(k)
			_ = d.op("remove", nil)
			d.path = d.path[:n]
		}
	}
	for j, m := range mb {
		k := keyString(m.key)
		if ib[k] != j {
			continue
		}
		n := d.pushName(k)
		if i, ok := ia[k]; ok {
			err = d.value(ma[i].val, m.val)
		} else {
			err = d.op("add", m.val)
		}
		d.path = d.path[:n]
		if err != nil {
			return err
		}
	}
	return nil
}

func sameNames(ma, mb []member) bool {
	if len(ma) != len(mb) {
		return false
	}
	for i := range ma {
		if !bytes.Equal(ma[i].key, mb[i].key) {
			return false
		}
	}
	return true
}

func lastIndex(ms []member) map[string]int {
	m := make(map[string]int, len(ms))
	for i, x := range ms {
		m[keyString(x.key)] = i
	}
	return m
}

func (d *differ) array(a, b []byte) error {
	ea, err := elements(nil, a)
	if err != nil {
		return err
	}
	eb, err := elements(nil, b)
	if err != nil {
		return err
	}
	head := 0
	for head < len(ea) && head < len(eb) && bytes.Equal(ea[head], eb[head]) {
		head++
	}
	tail := 0
	for tail < len(ea)-head && tail < len(eb)-head && bytes.Equal(ea[len(ea)-1-tail], eb[len(eb)-1-tail]) {
		tail++
	}
	ma, mb := ea[head:len(ea)-tail], eb[head:len(eb)-tail]
	paired := min(len(ma), len(mb))
	for i := range paired {
		n := d.pushIndex(head + i)
		err := d.value(ma[i], mb[i])
		d.path = d.path[:n]
		if err != nil {
			return err
		}
	}
	for range len(ma) - paired {
		n := d.pushIndex(head + paired)
		_ = d.op("remove", nil)
		d.path = d.path[:n]
	}
	for i := paired; i < len(mb); i++ {
		n := d.pushIndex(head + i)
		err := d.op("add", mb[i])
		d.path = d.path[:n]
		if err != nil {
			return err
		}
	}
	return nil
}
