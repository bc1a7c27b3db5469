package jsonscan

import (
	"encoding/json"
	"testing"
)

// documents are valid JSON values; every prefix of each is a truncated input.
var documents = []string{
	`{"topic":"app-config","revision":"42","epoch":"e1","timestampMs":1732521600000}`,
	`{"jsonrpc":"2.0","id":7,"method":"channel.invalidate","params":{"a":[1,{"b":"c\"}"}],"d":null}}`,
	` [ true , false , null , -1.5e+3 , "x\\y" , {} , [] ] `,
	`"a \"quoted\" \\ string \u00e9"`,
	`{"a":{"b":{"c":[[["deep"]]]}}}`,
	`12345`,
}

// check runs every function at every index from -2 to len(b)+2 and fails on a panic or
// on a position outside [0, len(b)].
func check(t *testing.T, b []byte) {
	t.Helper()
	for i := -2; i <= len(b)+2; i++ {
		for name, f := range map[string]func([]byte, int) int{"SkipSpace": SkipSpace, "SkipValue": SkipValue, "SkipString": SkipString} {
			var got int
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s(%q, %d) panicked: %v; want a position in [0, %d]", name, b, i, r, len(b))
					}
				}()
				got = f(b, i)
			}()
			if got < 0 || got > len(b) {
				t.Fatalf("%s(%q, %d) = %d, want a position in [0, %d]", name, b, i, got, len(b))
			}
			if i >= 0 && i <= len(b) && got < i {
				t.Fatalf("%s(%q, %d) = %d, want no position before %d", name, b, i, got, i)
			}
		}
	}
}

func TestNeverPanicsOnTruncatedInput(t *testing.T) {
	for _, in := range []string{"", "{", `{"a":`, `{"a`, `"`, `"\`, "[", `[1,`, "}", ":", ","} {
		check(t, []byte(in))
	}
	for _, doc := range documents {
		for n := range len(doc) + 1 {
			check(t, []byte(doc[:n]))
		}
	}
}

// A truncated value is reported as running to the end of the input.
func TestTruncatedValueEndsAtLen(t *testing.T) {
	for _, in := range []string{"", "{", `{"a":`, `{"a":"b`, `["x`, `"\"`, `[[]`} {
		if got := SkipValue([]byte(in), 0); got != len(in) {
			t.Errorf("SkipValue(%q, 0) = %d, want %d (len)", in, got, len(in))
		}
	}
}

func TestSkipValueOnValidInput(t *testing.T) {
	for _, doc := range documents {
		b := []byte(doc)
		start := SkipSpace(b, 0)
		end := SkipValue(b, start)
		if rest := SkipSpace(b, end); rest != len(b) {
			t.Errorf("SkipValue(%q, %d) = %d: got %q left after the value, want nothing", doc, start, end, b[rest:])
		}
	}
}

func FuzzScan(f *testing.F) {
	for _, doc := range documents {
		f.Add([]byte(doc), 0)
		f.Add([]byte(doc[:len(doc)/2]), len(doc)/3)
	}
	f.Fuzz(func(t *testing.T, b []byte, i int) {
		for name, fn := range map[string]func([]byte, int) int{"SkipSpace": SkipSpace, "SkipValue": SkipValue, "SkipString": SkipString} {
			if got := fn(b, i); got < 0 || got > len(b) {
				t.Fatalf("%s(%q, %d) = %d, want a position in [0, %d]", name, b, i, got, len(b))
			}
		}
		if json.Valid(b) {
			start := SkipSpace(b, 0)
			if end := SkipValue(b, start); SkipSpace(b, end) != len(b) {
				t.Fatalf("SkipValue(%q, %d) = %d on valid JSON, want %d, the end of the value", b, start, end, len(b))
			}
		}
	})
}
