package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// suiteDir is the official JSON Patch test suite (github.com/json-patch/json-patch-tests),
// kept beside the checkout in ../shared (CI has it there too).
const suiteDir = "../../../shared/json-patch-tests"

// suiteCase is one record of tests.json or spec_tests.json (see the suite's README).
// Patch stays raw so that DecodePatch sees it as written: two records repeat "op" in one
// operation, which a decoded map would hide.
type suiteCase struct {
	Comment  string          `json:"comment"`
	Doc      json.RawMessage `json:"doc"`
	Patch    json.RawMessage `json:"patch"`
	Expected json.RawMessage `json:"expected"`
	Error    *string         `json:"error"`
	Disabled bool            `json:"disabled"`
}

func loadSuite(t *testing.T, name string) []suiteCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(suiteDir, name))
	if err != nil {
		t.Fatalf("the official JSON Patch suite must be in %s (CI keeps ../shared beside the checkout): %v", suiteDir, err)
	}
	var cases []suiteCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cases
}

// sameJSON is the tests' oracle for "the same document": encoding/json's reading of
// both, independent of this package's equalJSON, with numbers compared as written (this
// package never rewrites one, so 1.0 and 1 are different results here).
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(decodeAny(t, a), decodeAny(t, b))
}

func decodeAny(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// TestOfficialSuite runs every record of the suite, the disabled ones too: each has an
// outcome this package gives (the two "two 'op' members" records are refused because
// DecodePatch refuses a repeated member name; "Toplevel scalar values OK?" and "Whole
// document" succeed). A record with neither expected nor error must apply.
func TestOfficialSuite(t *testing.T) {
	total := 0
	for _, file := range []string{"tests.json", "spec_tests.json"} {
		for i, c := range loadSuite(t, file) {
			if c.Doc == nil || c.Patch == nil {
				continue // a comment-only record
			}
			total++
			name := file + "/" + c.Comment
			if c.Comment == "" {
				name = file + "/" + string(rune('0'+i/100)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
			}
			t.Run(name, func(t *testing.T) {
				got, err := decodeAndApply(c.Doc, c.Patch)
				if c.Error != nil {
					if err == nil {
						t.Fatalf("applied to %s, want an error (%s); patch %s", got, *c.Error, c.Patch)
					}
					var pe *Error
					if !errors.As(err, &pe) || pe.Kind == 0 {
						t.Fatalf("error %v is not a *Error with a Kind", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("patch %s on %s: %v", c.Patch, c.Doc, err)
				}
				want := c.Expected
				if want == nil {
					want = c.Doc // "Whole document": only a test op
				}
				if !sameJSON(t, got, want) {
					t.Fatalf("patch %s on %s: got %s, want %s", c.Patch, c.Doc, got, want)
				}
				if c, _ := compactValid(got); len(c) != len(got) {
					t.Fatalf("result %s is not compact", got)
				}
			})
		}
	}
	if total < 100 {
		t.Fatalf("ran %d records, want the whole suite (112 at commit 2a928f9)", total)
	}
}

func decodeAndApply(doc, patch []byte) ([]byte, error) {
	p, err := DecodePatch(patch)
	if err != nil {
		return nil, err
	}
	return Apply(doc, p)
}
