package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// validCases are inputs on both sides of each rule json.Valid applies.
var validCases = []string{
	``, ` `, `{}`, `[]`, ` { } `, `[ ]`, `{`, `}`, `[`, `]`, `{]`, `[}`, `[1,]`, `[,1]`, `{,}`,
	`{"a":1,}`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":1}x`, `{"a":1}{}`, `{} {}`,
	`"a"`, `"`, `"\"`, `"\\"`, `"\/\b\f\n\r\t"`, `"\x"`, `"\u00e9"`, `"\u00G9"`, `"\u00e"`,
	"\"tab\there\"", "\"nul\x00\"", "\"\x7f\"", "\"\xff\xfe\"", "\"caf\xc3\xa9\"",
	`0`, `-0`, `01`, `-01`, `1.`, `1.5`, `.5`, `-`, `-a`, `1e`, `1e+`, `1e5`, `1E-5`, `1.5e+10`,
	`1.e5`, `+1`, `0x10`, `1 2`, `12345678901234567890123456789`, `-0.0e-0`,
	`true`, `false`, `null`, `tru`, `nul`, `truex`, `True`, `NULL`, `[true,false,null]`,
	"\ufeff{}", " \t\r\n1\n", "\v1", "1\x00",
	`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"t","revision":"1"}}`,
	`{"a":[1,{"b":"c\"}"}],"d":null}`, `[[[[]]]]`, `[[[[]]]`, `{"a":{"b":{}}}`,
}

func TestValidAnswersAsEncodingJSON(t *testing.T) {
	for _, in := range validCases {
		checkValid(t, []byte(in))
	}
	for _, doc := range documents {
		for n := range len(doc) + 1 {
			checkValid(t, []byte(doc[:n]))
		}
	}
}

// Nesting deeper than MaxDepth is refused, as encoding/json refuses it, and the depth a
// caller passes in counts.
func TestValidNestingLimit(t *testing.T) {
	for _, n := range []int{MaxDepth - 1, MaxDepth, MaxDepth + 1} {
		arrays := strings.Repeat("[", n) + strings.Repeat("]", n)
		objects := strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1)
		mixed := strings.Repeat(`[{"a":`, n/2) + "0" + strings.Repeat("}]", n/2)
		for _, in := range []string{arrays, objects, mixed} {
			checkValid(t, []byte(in))
		}
	}
	inner := []byte(strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1))
	if _, ok := ValidValue(inner, 0, 1); !ok {
		t.Errorf("ValidValue(%d nested arrays, depth 1) refused: want ok, %d levels in all", MaxDepth-1, MaxDepth)
	}
	if _, ok := ValidValue(inner, 0, 2); ok {
		t.Errorf("ValidValue(%d nested arrays, depth 2) accepted: want refused, %d levels in all", MaxDepth-1, MaxDepth+1)
	}
}

// ValidValue reports where the value ends, leaving what follows to the caller.
func TestValidValueEnd(t *testing.T) {
	for _, c := range []struct {
		in    string
		i     int
		end   int
		valid bool
	}{
		{`{"a":1},`, 0, 7, true},
		{`"x":`, 0, 3, true},
		{`12}`, 0, 2, true},
		{`[1, 2] x`, 0, 6, true},
		{`{"a":"b"}`, 5, 8, true},
		{`true`, 1, 0, false},
		{`[1,`, 0, 0, false},
		{` 1`, 0, 0, false}, // whitespace before the value is the caller's
		{`1`, -1, 0, false},
		{`1`, 1, 0, false},
	} {
		end, ok := ValidValue([]byte(c.in), c.i, 0)
		if ok != c.valid || ok && end != c.end {
			t.Errorf("ValidValue(%q, %d) = %d, %v, want %d, %v", c.in, c.i, end, ok, c.end, c.valid)
		}
		if end < 0 || end > len(c.in) {
			t.Errorf("ValidValue(%q, %d) = %d, want a position in [0, %d]", c.in, c.i, end, len(c.in))
		}
	}
}

// FuzzValid holds Valid to json.Valid's answer on every input, and ValidValue to a
// position inside b at any index and depth, without a panic.
func FuzzValid(f *testing.F) {
	for _, in := range validCases {
		f.Add([]byte(in), 0, 0)
	}
	for _, doc := range documents {
		f.Add([]byte(doc), 1, 3)
	}
	f.Fuzz(func(t *testing.T, b []byte, i, depth int) {
		checkValid(t, b)
		end, ok := ValidValue(b, i, depth)
		if end < 0 || end > len(b) {
			t.Fatalf("ValidValue(%q, %d, %d) = %d, want a position in [0, %d]", b, i, depth, end, len(b))
		}
		if ok && depth >= 0 && !json.Valid(b[i:end]) {
			t.Fatalf("ValidValue(%q, %d, %d) took %q, which json.Valid refuses", b, i, depth, b[i:end])
		}
	})
}

func checkValid(t *testing.T, b []byte) {
	t.Helper()
	if got, want := Valid(b), json.Valid(b); got != want {
		t.Fatalf("Valid(%.200q) = %v, json.Valid says %v", b, got, want)
	}
	if json.Valid(b) {
		start := SkipSpace(b, 0)
		if end, _ := ValidValue(b, start, 0); SkipSpace(b, end) != len(b) {
			t.Fatalf("ValidValue(%.200q, %d) = %d on valid JSON, want the end of the value", b, start, end)
		}
	}
}

func BenchmarkValid(b *testing.B) {
	msg := []byte(`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"app-config","revision":"123456"}}`)
	snapshot := []byte(`{"revision":"42","data":{"items":[` + strings.Repeat(`{"id":12345,"name":"a name with spaces","on":true,"score":-1.5e3},`, 800) + `null]}}`)
	for _, c := range []struct {
		name string
		in   []byte
	}{{"invalidate", msg}, {"snapshot", snapshot}} {
		b.Run(c.name+"/jsonscan", func(b *testing.B) {
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				if !Valid(c.in) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(c.name+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				if !json.Valid(c.in) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
