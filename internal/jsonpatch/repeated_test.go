package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRepeatedNames(t *testing.T) {
	many := func(repeat bool) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range 40 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		if repeat {
			b.WriteString(`"k3":0}`)
		} else {
			b.WriteString(`"last":0}`)
		}
		return b.String()
	}
	for _, tc := range []struct {
		doc  string
		want bool
	}{
		{`{"a":1,"b":2}`, false},
		{`{"a":1,"a":2}`, true},
		{`{"a":1,"\u0061":2}`, true},             // one name, spelt two ways
		{`{"a":{"a":1},"b":{"a":2}}`, false},     // the same name in different objects
		{`{"a":{"x":1},"a":{"y":2}}`, true},      // a repeat after a nested object closed
		{`{"a":{"x":1,"x":2}}`, true},            // inside a nested object
		{`[{"a":1},{"a":1}]`, false},             // elements are different objects
		{`[{"a":1,"b":[{"c":1,"c":2}]}]`, true},  // deep
		{`{"a":"\"b\":1,\"b\":2","b":3}`, false}, // names inside a string are no names
		{`{ "a" : [ "a" , "a" ] , "b" : "a" }`, false},
		{`"a"`, false},
		{`[1,2,"x"]`, false},
		{`{}`, false},
		{many(false), false},
		{many(true), true},
		{`{"a\",\"a":1,"a":2}`, false}, // an escaped quote does not end a name
		{`{"k":"\"","k":1}`, true},     // nor a value
		// Strings on either side of the 32 bytes read byte by byte, escapes at the edge.
		{`{"` + strings.Repeat("n", 40) + `":1,"` + strings.Repeat("n", 39) + `\u006e":2}`, true},
		{`{"` + strings.Repeat("n", 30) + `\"":1,"` + strings.Repeat("n", 30) + `\\":2,"` + strings.Repeat("n", 30) + `\\\"":3}`, false},
		{`{"v":"` + strings.Repeat("x", 31) + `\"\",\"v\":\"","w":1}`, false},
		{`{"v":"` + strings.Repeat("x", 32) + `\\","v":1}`, true},
	} {
		require.Equal(t, tc.want, RepeatedNames([]byte(tc.doc)), tc.doc)
	}
}

// FuzzRepeatedNames: RepeatedNames agrees with encoding/json's tokens on every valid
// document (a name repeated when, decoded, it is already in its object).
func FuzzRepeatedNames(f *testing.F) {
	for _, seed := range []string{`{"a":1,"\u0061":2}`, `[{"a":{"b":1}},{"b":2,"b":3}]`, `{"` + strings.Repeat("k", 33) + `\"":1,"x":"\\","x":0}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !json.Valid(doc) {
			return
		}
		if got, want := RepeatedNames(doc), repeatedByTokens(t, doc); got != want {
			t.Fatalf("RepeatedNames(%q) = %v, encoding/json's tokens say %v", doc, got, want)
		}
	})
}

func repeatedByTokens(t *testing.T, doc []byte) bool {
	type open struct {
		object bool
		atName bool
		names  map[string]bool
	}
	var stack []*open
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber() // a number too large for float64 is still valid JSON
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			t.Fatalf("encoding/json on a valid document: %v", err)
		}
		var top *open
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.atName {
			if name, ok := tok.(string); ok {
				if top.names[name] {
					return true
				}
				top.names[name] = true
				top.atName = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &open{object: true, atName: true, names: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, &open{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the next token of an object is a name.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].atName = true
		}
	}
}
