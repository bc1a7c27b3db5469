package jsonpatch

import (
	"fmt"
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
	} {
		require.Equal(t, tc.want, RepeatedNames([]byte(tc.doc)), tc.doc)
	}
}
