package jsonpatch

import (
	"testing"

	"github.com/state-sync/state-sync/internal/jsonscan"
)

// skipCompact agrees with jsonscan.SkipValue at every value start of compact documents.
func TestSkipCompactMatchesJSONScan(t *testing.T) {
	docs := []string{
		`{"a":[1,2,{"b":"c\"]}"}],"d":"\\","e":null,"f":-1.5e3,"g":{},"h":[]}`,
		`["\\\"",true,false,{"x":[[[]]]},"}"]`,
		`"s\u0022"`, `12`, `true`,
	}
	for _, d := range docs {
		b := []byte(d)
		for i := range b {
			if c := b[i]; c != ',' && c != ':' && c != '}' && c != ']' && (i == 0 || b[i-1] == ',' || b[i-1] == ':' || b[i-1] == '[') {
				if got, want := skipCompact(b, i), jsonscan.SkipValue(b, i); got != want {
					t.Errorf("%s at %d: skipCompact %d, SkipValue %d", d, i, got, want)
				}
			}
		}
	}
}

func BenchmarkSkipJSONScan1MiB(b *testing.B) {
	doc := largeDoc(1<<20, 5000, "x")
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if jsonscan.SkipValue(doc, 0) != len(doc) {
			b.Fatal("short")
		}
	}
}

func BenchmarkSkipCompact1MiB(b *testing.B) {
	doc := largeDoc(1<<20, 5000, "x")
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if skipCompact(doc, 0) != len(doc) {
			b.Fatal("short")
		}
	}
}

func BenchmarkCompactValid1MiB(b *testing.B) {
	doc := largeDoc(1<<20, 5000, "x")
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := compactValid(doc); err != nil {
			b.Fatal(err)
		}
	}
}
