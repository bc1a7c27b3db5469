package jsonpatch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// The splice path (splice.go) must be invisible: for any compact document and any
// patch, Apply gives the bytes, or the error, that the node path alone gives.

// spliceAgrees applies p to doc both ways and reports any difference.
func spliceAgrees(t *testing.T, doc []byte, p Patch) {
	t.Helper()
	c, err := compactValid(doc)
	if err != nil {
		return
	}
	before := bytes.Clone(c)
	want, wantErr := applyCompact(c, p, false, false)
	patch, _ := p.MarshalJSON()
	// ApplyValidUniqueNames' scans stop at the first member of a name: where no object
	// repeats one, that must change nothing.
	modes := []bool{false}
	if !RepeatedNames(c) && !p.RepeatedNames() {
		modes = append(modes, true)
		uniqueChecked++
	}
	for _, unique := range modes {
		got, gotErr := applyCompact(c, p, true, unique)
		if !bytes.Equal(c, before) {
			t.Fatalf("applying %v wrote to the document", p)
		}
		if !reflect.DeepEqual(gotErr, wantErr) {
			t.Fatalf("doc %s, patch %s (unique names %v): spliced error %v, node path %v", c, patch, unique, gotErr, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("doc %s, patch %s (unique names %v): spliced %s, node path %s", c, patch, unique, got, want)
		}
		if gotErr == nil && len(p) > 0 && len(c) > 0 && &got[0] == &c[0] {
			t.Fatalf("doc %s, patch %s: the result shares the document's memory", c, patch)
		}
	}
}

// uniqueChecked counts the spliceAgrees calls that also checked the unique-names scans.
var uniqueChecked int

// genJSON writes a random compact JSON value and appends the pointers of its values to
// ptrs. Member names come from a small set, so objects often repeat a name (valid JSON,
// the last one counts), and escaped spellings ("\u0061" for "a") appear.
func genJSON(r *rand.Rand, depth int, at string, ptrs *[]string) string {
	*ptrs = append(*ptrs, at)
	k := r.IntN(10)
	if depth <= 0 && k >= 6 {
		k = r.IntN(6)
	}
	switch k {
	case 0:
		return "null"
	case 1:
		return []string{"true", "false"}[r.IntN(2)]
	case 2, 3:
		return []string{"0", "-1", "1.5", "1e3", "1.0", "-0.25"}[r.IntN(6)]
	case 4, 5:
		return []string{`""`, `"a"`, `"\u0061"`, `"x\"y"`}[r.IntN(4)]
	case 6, 7:
		var b strings.Builder
		b.WriteByte('{')
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			names := []struct{ raw, tok string }{{"a", "a"}, {"b", "b"}, {`\u0061`, "a"}, {"~", "~0"}, {"/", "~1"}, {"", ""}, {"0", "0"}}
			n := names[r.IntN(len(names))]
			b.WriteString(`"` + n.raw + `":`)
			b.WriteString(genJSON(r, depth-1, at+"/"+n.tok, ptrs))
		}
		b.WriteByte('}')
		return b.String()
	default:
		var b strings.Builder
		b.WriteByte('[')
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(genJSON(r, depth-1, fmt.Sprintf("%s/%d", at, i), ptrs))
		}
		b.WriteByte(']')
		return b.String()
	}
}

// genPointer is mostly a pointer of the document, sometimes one step off it (a new
// member, an index past the end, "-", a leading zero).
func genPointer(r *rand.Rand, ptrs []string) string {
	p := ptrs[r.IntN(len(ptrs))]
	if r.IntN(3) == 0 {
		p += "/" + []string{"a", "b", "c", "0", "1", "5", "-", "01", "~0"}[r.IntN(9)]
	}
	return p
}

func genPatch(r *rand.Rand, ptrs []string) []byte {
	var b strings.Builder
	b.WriteByte('[')
	for i := range 1 + r.IntN(3) {
		if i > 0 {
			b.WriteByte(',')
		}
		var unused []string
		switch op := []string{"add", "replace", "remove", "test", "copy", "move"}[r.IntN(6)]; op {
		case "add", "replace", "test":
			v := genJSON(r, 2, "", &unused)
			if op == "test" && r.IntN(2) == 0 { // often a test of a value that is there
				v = ""
			}
			fmt.Fprintf(&b, `{"op":%q,"path":%q,"value":%s}`, op, genPointer(r, ptrs), v)
		case "remove":
			fmt.Fprintf(&b, `{"op":"remove","path":%q}`, genPointer(r, ptrs))
		default:
			fmt.Fprintf(&b, `{"op":%q,"from":%q,"path":%q}`, op, genPointer(r, ptrs), genPointer(r, ptrs))
		}
	}
	b.WriteByte(']')
	return []byte(b.String())
}

func TestSpliceMatchesNodes(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 6902))
	uniqueChecked = 0
	for range 20000 {
		var ptrs []string
		doc := []byte(genJSON(r, 4, "", &ptrs))
		raw := genPatch(r, ptrs)
		p, err := DecodePatch(bytes.ReplaceAll(raw, []byte(`,"value":}`), []byte(`,"value":null}`)))
		if err != nil {
			t.Fatalf("generated patch %s: %v", raw, err)
		}
		// A test whose value was left out tests the value that is there.
		for i := range p {
			if p[i].Op == "test" && string(p[i].Value) == "null" && r.IntN(2) == 0 {
				if c, err := compactValid(doc); err == nil {
					if s, e, ok := locate(c, p[i].Path, false); ok {
						p[i].Value = c[s:e]
					}
				}
			}
		}
		spliceAgrees(t, doc, p)
	}
	if uniqueChecked < 5000 {
		t.Errorf("only %d of 20000 documents and patches repeat no member name: the unique-names scans are hardly checked", uniqueChecked)
	}
}

// Cases the random walk reaches only by luck.
func TestSpliceMatchesNodesEdges(t *testing.T) {
	cases := []struct{ doc, patch string }{
		{`{"a":1,"a":2}`, `[{"op":"replace","path":"/a","value":3}]`},
		{`{"a":1,"\u0061":2}`, `[{"op":"remove","path":"/a"}]`},
		{`{"a":{"b":1},"a":{"b":2}}`, `[{"op":"replace","path":"/a/b","value":3}]`},
		{`{"a":[1,2,3]}`, `[{"op":"remove","path":"/a/0"},{"op":"remove","path":"/a/1"},{"op":"remove","path":"/a/0"}]`},
		{`{"a":[]}`, `[{"op":"add","path":"/a/-","value":1},{"op":"add","path":"/a/0","value":0},{"op":"add","path":"/a/2","value":2}]`},
		{`{"a":[1]}`, `[{"op":"add","path":"/a/2","value":1}]`},
		{`{}`, `[{"op":"add","path":"/x","value":{}},{"op":"add","path":"/x/y","value":[]},{"op":"copy","from":"/x","path":"/x/y/-"}]`},
		{`{"a":1}`, `[{"op":"remove","path":"/a"},{"op":"add","path":"/~1","value":"\u00e9"}]`},
		{`[1,2]`, `[{"op":"test","path":"/1","value":2.0},{"op":"replace","path":"/01","value":0}]`},
		{`{"a":"x"}`, `[{"op":"add","path":"/a/b","value":1}]`},
		{`{"a":{"b":[1,{"c":2}]}}`, `[{"op":"move","from":"/a/b/1","path":"/d"},{"op":"test","path":"/d/c","value":2}]`},
		{`{"a":1}`, `[{"op":"replace","path":"","value":[1]},{"op":"add","path":"/-","value":2}]`},
	}
	for _, c := range cases {
		p, err := DecodePatch([]byte(c.patch))
		if err != nil {
			t.Fatal(err)
		}
		spliceAgrees(t, []byte(c.doc), p)
	}
}

// FuzzSpliceMatchesNodes: the differential check on any document and patch.
func FuzzSpliceMatchesNodes(f *testing.F) {
	f.Add([]byte(`{"a":[1,2,{"b":"c"}],"a":{}}`), []byte(`[{"op":"add","path":"/a/1","value":{"x":1}}]`))
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`[{"op":"copy","from":"/a/b","path":"/c"},{"op":"test","path":"/c","value":1.0}]`))
	f.Add([]byte(`[1, 2 ,3]`), []byte(`[{"op":"remove","path":"/2"},{"op":"add","path":"/-","value":4}]`))
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		p, err := DecodePatch(patch)
		if err != nil {
			return
		}
		spliceAgrees(t, doc, p)
	})
}
