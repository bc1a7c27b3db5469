package jsonpatch

import (
	"bytes"
	"strconv"
)

// Diff returns an RFC 6902 patch, as compact JSON, that turns the JSON document from
// into to: Apply(from, Diff(from, to)) is to (semantically equal JSON; exactly to's
// bytes, compacted, wherever a value changed). It is built to be small and fast where
// the sidecar uses it, a large document with a few changed leaves:
//
//   - Subtrees are compared as bytes first, and only a subtree whose bytes differ is
//     walked into, so an unchanged 1 MiB sibling costs one memcmp.
//   - A changed leaf is one "replace"; object members are "add"ed and "remove"d by name;
//     arrays lose their common head and tail, then pair the rest element by element with
//     "add" or "remove" for the difference in length.
//   - Wherever the operations for a container come to more bytes than replacing the
//     container whole, the container is replaced whole.
//
// Two values that are equal but spelt differently (1.0 and 1, "\u0041" and "A") may get
// a "replace"; member order alone never does. An error (Kind Malformed) says which
// document is not JSON.
func Diff(from, to []byte) ([]byte, error) {
	a, err := compactValid(from)
	if err != nil {
		return nil, &Error{Kind: Malformed, Index: -1, Msg: "Diff's from is " + err.Error()}
	}
	b, err := compactValid(to)
	if err != nil {
		return nil, &Error{Kind: Malformed, Index: -1, Msg: "Diff's to is " + err.Error()}
	}
	d := differ{out: append(make([]byte, 0, 128), '[')}
	d.value(a, b)
	return append(d.out, ']'), nil
}

type differ struct {
	out  []byte // "[" and the operations so far, each but the first after a ","
	path []byte // the current location as a JSON Pointer, escaped as a JSON string body
}

func (d *differ) value(a, b []byte) {
	if bytes.Equal(a, b) {
		return
	}
	if a[0] == b[0] && (a[0] == '{' || a[0] == '[') {
		mark := len(d.out)
		if a[0] == '{' {
			d.object(a, b)
		} else {
			d.array(a, b)
		}
		if len(d.out)-mark <= len(`,{"op":"replace","path":"","value":}`)+len(d.path)+len(b) {
			return
		}
		d.out = d.out[:mark]
	}
	d.op("replace", b)
}

// op appends one operation on d.path; value is nil for remove.
func (d *differ) op(name string, value []byte) {
	if len(d.out) > 1 {
		d.out = append(d.out, ',')
	}
	d.out = append(d.out, `{"op":"`...)
	d.out = append(d.out, name...)
	d.out = append(d.out, `","path":"`...)
	d.out = append(d.out, d.path...)
	d.out = append(d.out, '"')
	if value != nil {
		d.out = append(d.out, `,"value":`...)
		d.out = append(d.out, value...)
	}
	d.out = append(d.out, '}')
}

// pushRaw appends the member name written raw (escaped as in JSON) to d.path and returns
// the length to restore.
func (d *differ) pushRaw(raw []byte) int {
	n := len(d.path)
	if bytes.IndexByte(raw, '\\') >= 0 {
		return d.pushName(keyString(raw))
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

// maxLockstepChanges bounds the changed members the lockstep walk checks for a repeated
// name one by one; beyond it, maps are cheaper.
const maxLockstepChanges = 16

func (d *differ) object(a, b []byte) {
	ma, mb := appendMembers(nil, a), appendMembers(nil, b)
	if d.lockstep(ma, mb) {
		return
	}
	ia, ib := lastIndex(ma), lastIndex(mb)
	for i, m := range ma {
		k := keyString(m.key)
		if ia[k] != i {
			continue
		}
		if _, ok := ib[k]; !ok {
			n := d.pushName(k)
			d.op("remove", nil)
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
			d.value(ma[i].val, m.val)
		} else {
			d.op("add", m.val)
		}
		d.path = d.path[:n]
	}
}

// lockstep diffs two objects whose members have the same names in the same order (the
// usual case: a document and its next version), without maps. It reports false, having
// written nothing, when the names differ or too many members changed.
func (d *differ) lockstep(ma, mb []member) bool {
	if len(ma) != len(mb) {
		return false
	}
	var changed [maxLockstepChanges]int
	nc := 0
	for i := range ma {
		if !bytes.Equal(ma[i].key, mb[i].key) {
			return false
		}
		if !bytes.Equal(ma[i].val, mb[i].val) {
			if nc == len(changed) {
				return false
			}
			changed[nc] = i
			nc++
		}
	}
	for _, i := range changed[:nc] {
		if repeatedLater(ma, i) {
			continue // a later member of that name is the one readers see
		}
		n := d.pushRaw(ma[i].key)
		d.value(ma[i].val, mb[i].val)
		d.path = d.path[:n]
	}
	return true
}

// repeatedLater reports whether a member after i has the same name as member i.
func repeatedLater(ms []member, i int) bool {
	key := ms[i].key
	esc := bytes.IndexByte(key, '\\') >= 0
	for j := i + 1; j < len(ms); j++ {
		k := ms[j].key
		if bytes.Equal(k, key) {
			return true
		}
		if (esc || bytes.IndexByte(k, '\\') >= 0) && keyString(k) == keyString(key) {
			return true
		}
	}
	return false
}

func lastIndex(ms []member) map[string]int {
	m := make(map[string]int, len(ms))
	for i, x := range ms {
		m[keyString(x.key)] = i
	}
	return m
}

func (d *differ) array(a, b []byte) {
	ea, eb := appendElements(nil, a), appendElements(nil, b)
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
		d.value(ma[i], mb[i])
		d.path = d.path[:n]
	}
	for range len(ma) - paired {
		n := d.pushIndex(head + paired)
		d.op("remove", nil)
		d.path = d.path[:n]
	}
	for i := paired; i < len(mb); i++ {
		n := d.pushIndex(head + i)
		d.op("add", mb[i])
		d.path = d.path[:n]
	}
}
