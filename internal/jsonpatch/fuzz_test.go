package jsonpatch

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/state-sync/state-sync/internal/strictjson"
)

// FuzzApply: DecodePatch and Apply never panic, whatever the bytes; what Apply returns
// is compact, valid JSON; neither input is written to.
func FuzzApply(f *testing.F) {
	f.Add([]byte(`{"a":[1,2,{"b":"c"}]}`), []byte(`[{"op":"add","path":"/a/1","value":{"x":1}}]`))
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`[{"op":"move","from":"/a/b","path":"/c"},{"op":"test","path":"/c","value":1.0}]`))
	f.Add([]byte(`[1, 2 ,3]`), []byte(`[{"op":"copy","from":"/0","path":"/-"},{"op":"remove","path":"/1"}]`))
	f.Add([]byte(`{"a~b":{"c/d":null}}`), []byte(`[{"op":"replace","path":"/a~0b/c~1d","value":[true]}]`))
	f.Add([]byte(`"s"`), []byte(`[{"op":"replace","path":"","value":{"k":"\u00e9"}}]`))
	f.Add([]byte(`{"a":1,"a":2}`), []byte(`[{"op":"remove","path":"/a"},{"op":"add","path":"/b","value":1e400}]`))
	f.Add([]byte(`{"\u0061":{"b":1},"c":[]}`), []byte(`[{"op":"add","path":"/a","value":2},{"op":"copy","from":"/c","path":"/\u0062"}]`))
	f.Add([]byte(`{"x":{"b":1}}`), []byte(`[{"op":"move","from":"/x","path":"/x/b"},{"op":"add","path":"/y","value":{"k":1,"\u006b":2}}]`))
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		docCopy, patchCopy := bytes.Clone(doc), bytes.Clone(patch)
		p, err := DecodePatch(patch)
		if err != nil {
			return
		}
		out, err := Apply(doc, p)
		if !bytes.Equal(doc, docCopy) || !bytes.Equal(patch, patchCopy) {
			t.Fatalf("DecodePatch or Apply wrote to its input")
		}
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Apply(%q, %q) = %q, not JSON", doc, patch, out)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, out); err != nil || !bytes.Equal(compact.Bytes(), out) {
			t.Fatalf("Apply(%q, %q) = %q, not compact", doc, patch, out)
		}
		// What state.patch relies on to skip RepeatedNames of its result
		// (history.repeated): Apply repeats no name the document and the values did not.
		if !RepeatedNames(doc) && !p.RepeatedNames() && RepeatedNames(out) {
			t.Fatalf("Apply(%q, %q) = %q repeats a member name; neither the document nor a value did", doc, patch, out)
		}
	})
}

// FuzzDiff: for any two JSON documents (with unique member names), Diff's patch applies to the first and gives the
// second; for any bytes, compactValid agrees with encoding/json (json.Valid, then
// json.Compact).
func FuzzDiff(f *testing.F) {
	f.Add([]byte(`{"a":[1,2,3],"b":{"c":"d"}}`), []byte(`{"a":[1,3],"b":{"c":"e","f":null}}`))
	f.Add([]byte(`[{"x":1},{"x":2}]`), []byte(`[{"x":0},{"x":1},{"x":2}]`))
	f.Add([]byte(`{"~":1,"/":2,"\u0041":3}`), []byte(`{"~":2,"A":4}`))
	f.Add([]byte(` { "a" : [ 1 , 2 ] } `), []byte(`{"a":[1,2]}`))
	f.Add([]byte(`1.0`), []byte(`1`))
	f.Fuzz(func(t *testing.T, from, to []byte) {
		for _, b := range [][]byte{from, to} {
			c, err := compactValid(b)
			if (err == nil) != json.Valid(b) {
				t.Fatalf("compactValid(%q) error %v, json.Valid %v", b, err, json.Valid(b))
			}
			if err == nil {
				var want bytes.Buffer
				_ = json.Compact(&want, b)
				if !bytes.Equal(c, want.Bytes()) {
					t.Fatalf("compactValid(%q) = %q, want %q", b, c, want.Bytes())
				}
			}
		}
		var v any // Diff's precondition: JSON with unique member names
		if strictjson.Decode(from, &v) != nil || strictjson.Decode(to, &v) != nil {
			return
		}
		patch, err := Diff(from, to)
		if err != nil {
			t.Fatalf("Diff(%q, %q): %v", from, to, err)
		}
		p, err := DecodePatch(patch)
		if err != nil {
			t.Fatalf("Diff(%q, %q) = %s, which DecodePatch refuses: %v", from, to, patch, err)
		}
		got, err := Apply(from, p)
		if err != nil {
			t.Fatalf("Diff(%q, %q) = %s, which does not apply: %v", from, to, patch, err)
		}
		if !sameJSON(t, got, to) {
			t.Fatalf("Diff(%q, %q) = %s applies to %s", from, to, patch, got)
		}
	})
}
