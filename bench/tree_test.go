package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/state-sync/state-sync/internal/jsonpatch"
)

// The freezeData windows' model applies the shared vectors (testdata/jsonpatch) as the
// SDK does: the same results, the same refusals, and the document it was given unchanged.
func TestApplyTreeAgreesWithTheSharedVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "jsonpatch", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var groups []struct {
		Description string `json:"description"`
		Cases       []struct {
			Description string          `json:"description"`
			From        json.RawMessage `json:"from"`
			To          json.RawMessage `json:"to"`
			Doc         json.RawMessage `json:"doc"`
			Patch       json.RawMessage `json:"patch"`
			Expected    json.RawMessage `json:"expected"`
			Error       string          `json:"error"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &groups); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range groups {
		for _, c := range g.Cases {
			doc, want := c.Doc, c.Expected
			if c.From != nil {
				doc, want = c.From, c.To
			}
			if want == nil && c.Error == "" {
				want = doc
			}
			p, err := jsonpatch.DecodePatch(c.Patch)
			if err != nil {
				if c.Error == "" {
					t.Errorf("%s: %s: DecodePatch: %v", g.Description, c.Description, err)
				}
				continue
			}
			tree, err := decodeTree(doc)
			if err != nil {
				t.Fatalf("%s: %s: %v", g.Description, c.Description, err)
			}
			before, _ := decodeTree(doc)
			got, err := applyTree(tree, p)
			n++
			if !reflect.DeepEqual(tree, before) {
				t.Errorf("%s: %s: applyTree changed the document it was given", g.Description, c.Description)
			}
			if c.Error != "" {
				if err == nil {
					t.Errorf("%s: %s: applied, want the refusal %s", g.Description, c.Description, c.Error)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %s: %v", g.Description, c.Description, err)
				continue
			}
			wantTree, _ := decodeTree(want)
			if !reflect.DeepEqual(got, wantTree) {
				t.Errorf("%s: %s: got %v, want %v", g.Description, c.Description, got, wantTree)
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d vectors ran", n)
	}
}

// BenchmarkApplyTreeOneLeaf1MiB: one freezeData window's apply of the deltas cell's patch.
func BenchmarkApplyTreeOneLeaf1MiB(b *testing.B) {
	tree, err := decodeTree(payload(deltaDocSize))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for k := 0; b.Loop(); k++ {
		p, err := jsonpatch.DecodePatch(leafPatch(k))
		if err != nil {
			b.Fatal(err)
		}
		if tree, err = applyTree(tree, p); err != nil {
			b.Fatal(err)
		}
	}
}
