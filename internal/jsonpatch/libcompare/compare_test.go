// Package libcompare measures the libraries issue 15 asked us to prefer against
// internal/jsonpatch: github.com/evanphx/json-patch/v5 (apply) and
// github.com/wI2L/jsondiff (diff). It is a module of its own so that the product's
// go.mod never gains them; the figures and the decision are in ../doc.go.
//
//	cd internal/jsonpatch/libcompare && go test -count=1 -run Suite -v . && go test -run '^$' -bench . -benchtime 2s .
package libcompare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	"github.com/state-sync/state-sync/internal/jsonpatch"
	"github.com/wI2L/jsondiff"
)

const suiteDir = "../../../../shared/json-patch-tests"

type suiteCase struct {
	Comment  string          `json:"comment"`
	Doc      json.RawMessage `json:"doc"`
	Patch    json.RawMessage `json:"patch"`
	Expected json.RawMessage `json:"expected"`
	Error    *string         `json:"error"`
	Disabled bool            `json:"disabled"`
}

func same(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// TestSuite counts the official suite's records each applier gets right (all records,
// disabled ones included, as internal/jsonpatch's own suite test runs them).
func TestSuite(t *testing.T) {
	appliers := map[string]func(doc, patch []byte) ([]byte, error){
		"internal/jsonpatch": func(doc, patch []byte) ([]byte, error) {
			p, err := jsonpatch.DecodePatch(patch)
			if err != nil {
				return nil, err
			}
			return jsonpatch.Apply(doc, p)
		},
		"evanphx/json-patch/v5": func(doc, patch []byte) ([]byte, error) {
			p, err := jsonpatchv5.DecodePatch(patch)
			if err != nil {
				return nil, err
			}
			return p.Apply(doc)
		},
	}
	for name, apply := range appliers {
		pass, total, enabledPass, enabled := 0, 0, 0, 0
		for _, file := range []string{"tests.json", "spec_tests.json"} {
			b, err := os.ReadFile(filepath.Join(suiteDir, file))
			if err != nil {
				t.Fatal(err)
			}
			var cases []suiteCase
			if err := json.Unmarshal(b, &cases); err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				if c.Doc == nil || c.Patch == nil {
					continue
				}
				total++
				if !c.Disabled {
					enabled++
				}
				got, err := func() (out []byte, err error) {
					defer func() {
						if r := recover(); r != nil {
							err = fmt.Errorf("panic: %v", r)
						}
					}()
					return apply(c.Doc, c.Patch)
				}()
				want := c.Expected
				if want == nil {
					want = c.Doc
				}
				ok := (c.Error != nil) == (err != nil) && (err != nil || same(got, want))
				if ok {
					pass++
					if !c.Disabled {
						enabledPass++
					}
				} else if testing.Verbose() {
					t.Logf("%s fails %q: got %s, %v", name, c.Comment, got, err)
				}
			}
		}
		t.Logf("%s: %d/%d records (%d/%d not disabled)", name, pass, total, enabledPass, enabled)
	}
}

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

func docs(b *testing.B) (from, to, patch []byte) {
	from, to = largeDoc(1<<20, 5000, "old"), largeDoc(1<<20, 5000, "new")
	patch, err := jsonpatch.Diff(from, to)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(from)))
	b.ReportAllocs()
	return from, to, patch
}

func BenchmarkDiffOurs(b *testing.B) {
	from, to, _ := docs(b)
	for b.Loop() {
		if _, err := jsonpatch.Diff(from, to); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDiffJsondiff(b *testing.B) {
	from, to, _ := docs(b)
	for b.Loop() {
		p, err := jsondiff.CompareJSON(from, to)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyOurs(b *testing.B) {
	from, _, raw := docs(b)
	for b.Loop() {
		p, err := jsonpatch.DecodePatch(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jsonpatch.Apply(from, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyEvanphx(b *testing.B) {
	from, _, raw := docs(b)
	for b.Loop() {
		p, err := jsonpatchv5.DecodePatch(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Apply(from); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloorJSONValid is the same run's floor: encoding/json reading 1 MiB once.
func BenchmarkFloorJSONValid(b *testing.B) {
	from, _, _ := docs(b)
	for b.Loop() {
		if !json.Valid(from) {
			b.Fatal("invalid")
		}
	}
}
