package jsonpatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// randomValue is a random JSON value of at most depth levels, as Go values that
// encoding/json writes (numbers as json.Number, so that spellings like 1e3 and -0.5
// appear as written).
func randomValue(r *rand.Rand, depth int) any {
	k := r.IntN(10)
	if depth <= 0 && k >= 6 {
		k = r.IntN(6)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2, 3:
		nums := []string{"0", "-1", "1.5", "1e3", "12345678901234567890", "-0.25", "3"}
		return json.Number(nums[r.IntN(len(nums))])
	case 4, 5:
		return randomName(r)
	case 6, 7:
		n := r.IntN(6)
		m := make(map[string]any, n)
		for range n {
			m[randomName(r)] = randomValue(r, depth-1)
		}
		return m
	default:
		n := r.IntN(6)
		a := make([]any, n)
		for i := range a {
			a[i] = randomValue(r, depth-1)
		}
		return a
	}
}

// randomName draws names that need escaping in a pointer ("~", "/") and in JSON.
func randomName(r *rand.Rand) string {
	names := []string{"a", "b", "c", "~", "/", "a/b", "m~n", "", "é", "\"q\"", "0", "-", "tab\t"}
	return names[r.IntN(len(names))]
}

// mutate returns v with a few random edits: leaves replaced, members added and removed,
// elements inserted and removed. v itself is not changed.
func mutate(r *rand.Rand, v any, edits int) any {
	for range edits {
		v = mutateOnce(r, v)
	}
	return v
}

func mutateOnce(r *rand.Rand, v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x)+1)
		for k, e := range x {
			m[k] = e
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys) // map order is random; the vectors must be reproducible
		switch op := r.IntN(4); {
		case op == 0 || len(keys) == 0:
			m[randomName(r)] = randomValue(r, 2)
		case op == 1:
			delete(m, keys[r.IntN(len(keys))])
		default:
			k := keys[r.IntN(len(keys))]
			m[k] = mutateOnce(r, m[k])
		}
		return m
	case []any:
		a := append([]any(nil), x...)
		switch op := r.IntN(4); {
		case op == 0 || len(a) == 0:
			i := r.IntN(len(a) + 1)
			a = append(a[:i], append([]any{randomValue(r, 2)}, a[i:]...)...)
		case op == 1:
			i := r.IntN(len(a))
			a = append(a[:i], a[i+1:]...)
		default:
			i := r.IntN(len(a))
			a[i] = mutateOnce(r, a[i])
		}
		return a
	}
	return randomValue(r, 2)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDiffApplyProperty: for random documents and random edits, applying Diff's patch to
// the old document gives the new one, and neither input is written to.
func TestDiffApplyProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		from := randomValue(r, 4)
		to := mutate(r, from, 1+r.IntN(4))
		fromJSON, toJSON := mustJSON(t, from), mustJSON(t, to)
		if i%3 == 0 { // whitespace must not matter
			var buf bytes.Buffer
			_ = json.Indent(&buf, fromJSON, "", "  ")
			fromJSON = buf.Bytes()
		}
		fromCopy, toCopy := bytes.Clone(fromJSON), bytes.Clone(toJSON)
		patch, err := Diff(fromJSON, toJSON)
		if err != nil {
			t.Fatalf("case %d: Diff(%s, %s): %v", i, fromJSON, toJSON, err)
		}
		p, err := DecodePatch(patch)
		if err != nil {
			t.Fatalf("case %d: Diff(%s, %s) = %s, which DecodePatch refuses: %v", i, fromJSON, toJSON, patch, err)
		}
		got, err := Apply(fromJSON, p)
		if err != nil {
			t.Fatalf("case %d: Diff(%s, %s) = %s, which does not apply: %v", i, fromJSON, toJSON, patch, err)
		}
		if !sameJSON(t, got, toJSON) {
			t.Fatalf("case %d: Diff(%s, %s) = %s applies to %s, want %s", i, fromJSON, toJSON, patch, got, toJSON)
		}
		if !bytes.Equal(fromJSON, fromCopy) || !bytes.Equal(toJSON, toCopy) {
			t.Fatalf("case %d: Diff or Apply wrote to its input", i)
		}
		if bytes.Equal(fromCopy, toCopy) && string(patch) != "[]" {
			t.Fatalf("case %d: Diff of equal documents = %s, want []", i, patch)
		}
	}
}

// TestDiffSmallOnOneLeaf: one changed leaf in a large document is one replace.
func TestDiffSmallOnOneLeaf(t *testing.T) {
	from, to := largeDoc(1<<20, 7, "old"), largeDoc(1<<20, 7, "new")
	patch, err := Diff(from, to)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"op":"replace","path":"/items/7/note","value":"new"}]`
	if string(patch) != want {
		t.Fatalf("got %s, want %s", patch, want)
	}
}

// largeDoc is about size bytes of JSON: {"meta":{...},"items":[{"id":..,"note":..,...}]},
// with item changed's note set to note.
func largeDoc(size, changed int, note string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"meta":{"version":3,"title":"a large topic"},"items":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		n := "note " + strconv.Itoa(i)
		if i == changed {
			n = note
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item-%d","price":%d.25,"tags":["x","y"],"note":%q}`, i, i, i%1000, n)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
