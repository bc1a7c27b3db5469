package strictjson

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckUTF8(t *testing.T) {
	for _, tc := range []struct {
		rule string
		in   string
		path string // "" with ok: accepted
		ok   bool
		at   int
	}{
		{rule: "UTF-8 text is accepted", in: `{"data":"héllo 😀"}`, ok: true},
		{rule: "escapes are not its business", in: `{"data":"\ud800"}`, ok: true},
		{rule: "a stray byte names its member", in: "{\"topic\":\"t\",\"data\":{\"k\":[\"\xff\"]}}", path: "data.k[0]", at: 27},
		{rule: "a truncated sequence is refused", in: "{\"data\":\"\xe2\x82\"}", path: "data", at: 9},
		{rule: "not JSON: the byte is still named", in: "abc\xff", at: 3},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			err := CheckUTF8([]byte(tc.in))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			var e *Error
			require.True(t, errors.As(err, &e), "got %v", err)
			require.Equal(t, InvalidUTF8, e.Kind)
			require.Equal(t, tc.path, e.Path)
			require.Equal(t, tc.at, e.Offset)
		})
	}
}

func TestCheckSurrogates(t *testing.T) {
	for _, tc := range []struct {
		rule   string
		in     string
		ok     bool
		path   string
		inName bool
	}{
		{rule: "pairs and other escapes are accepted", in: `{"data":{"a":"\ud83d\ude00\n\u00e9"}}`, ok: true},
		{rule: "an escaped backslash then ud800 is text", in: `{"data":"\\ud800"}`, ok: true},
		{rule: "three backslashes then u is an escape", in: `{"data":"\\\ud800"}`, path: "data"},
		{rule: "a lone one deep in opaque data is named", in: `{"data":{"list":[1,"x\udc00"]}}`, path: "data.list[1]"},
		{rule: "a lone one in a name inside data", in: `{"data":{"\ud800":1}}`, path: "data", inName: true},
		{rule: "a high half at the very end", in: `"\ud800"`},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			err := CheckSurrogates([]byte(tc.in))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			var e *Error
			require.True(t, errors.As(err, &e), "got %v", err)
			require.Equal(t, LoneSurrogate, e.Kind)
			require.Equal(t, tc.path, e.Path)
			require.Equal(t, tc.inName, e.inName)
		})
	}
}
