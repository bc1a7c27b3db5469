package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The shapes rpc decodes (rpc/handlers.go), copied so these tests read like its messages.
type retryOption struct {
	MaxAttempts    int     `json:"maxAttempts"`
	InitialDelayMs int64   `json:"initialDelayMs"`
	Multiplier     float64 `json:"multiplier"`
}

type openOptions struct {
	CallTimeoutMs    *int64       `json:"callTimeoutMs"`
	ResyncIntervalMs *int64       `json:"resyncIntervalMs"`
	Retry            *retryOption `json:"retry"`
}

type openParams struct {
	Channel string       `json:"channel"`
	Topic   string       `json:"topic"`
	Source  string       `json:"source"`
	Options *openOptions `json:"options"`
}

type setParams struct {
	Topic            string          `json:"topic"`
	Data             json.RawMessage `json:"data"`
	ExpectedRevision *string         `json:"expectedRevision"`
}

type envelope struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
}

type listDoc struct {
	Items []openParams          `json:"items"`
	ByKey map[string]openParams `json:"byKey"`
	Any   any                   `json:"any"`
	Bytes []byte                `json:"bytes"`
}

type ruleCase struct {
	rule    string // the subtest name: the rule, in words
	in      string
	into    func() any
	opts    Options
	kind    Kind   // 0: accepted
	path    string // Error.Path
	message string // a part of the message
}

func open() any       { return &openParams{} }
func set() any        { return &setParams{} }
func env() any        { return &envelope{} }
func list() any       { return &listDoc{} }
func anyDoc() any     { var v any; return &v }
func strict() Options { return Options{DisallowUnknown: true} }

var rules = []ruleCase{
	// What json.Unmarshal accepts and every reader reads alike is accepted.
	{rule: "a plain message is accepted", in: `{"channel":"a","topic":"t","options":{"callTimeoutMs":5,"retry":{"maxAttempts":3}}}`, into: open},
	{rule: "escapes that spell a known name are that name", in: `{"\u0063hannel":"a"}`, into: open},
	{rule: "a surrogate pair is one character", in: `{"channel":"c\ud83d\ude00"}`, into: open},
	{rule: "unknown members are ignored by default", in: `{"channel":"a","colour":"red"}`, into: open},
	{rule: "null for a pointer member is accepted", in: `{"options":null}`, into: open},
	{rule: "data is opaque: duplicates inside it are its own business", in: `{"topic":"t","data":{"a":1,"a":2,"A":3}}`, into: set},
	{rule: "data is opaque: lone surrogates inside it are not inspected by Decode", in: `{"topic":"t","data":"\ud800"}`, into: set},
	{rule: "an escaped backslash before u is no escape", in: `{"channel":"\\ud800"}`, into: open},
	{rule: "an empty object and array are fine", in: `{"items":[],"byKey":{},"any":{}}`, into: list},

	// Duplicates, at every level.
	{rule: "a member given twice is refused", in: `{"channel":"a","channel":"b"}`, into: open, kind: Duplicate, path: "channel", message: "appears twice"},
	{rule: "a member given twice, once escaped, is refused", in: `{"channel":"a","\u0063hannel":"b"}`, into: open, kind: Duplicate, path: "channel"},
	{rule: "a nested member given twice is refused", in: `{"options":{"callTimeoutMs":1,"callTimeoutMs":2}}`, into: open, kind: Duplicate, path: "options.callTimeoutMs"},
	{rule: "a member given twice two levels down is refused", in: `{"options":{"retry":{"maxAttempts":1,"maxAttempts":9}}}`, into: open, kind: Duplicate, path: "options.retry.maxAttempts"},
	{rule: "an unknown member given twice is refused", in: `{"x":1,"x":2}`, into: open, kind: Duplicate, path: "x"},
	{rule: "an envelope member given twice is refused", in: `{"jsonrpc":"2.0","method":"state.get","method":"shutdown"}`, into: env, kind: Duplicate, path: "method"},
	{rule: "a member twice in a slice element is refused", in: `{"items":[{"channel":"a"},{"topic":"a","topic":"b"}]}`, into: list, kind: Duplicate, path: "items[1].topic"},
	{rule: "a map key given twice is refused", in: `{"byKey":{"app-config":{},"app-config":{}}}`, into: list, kind: Duplicate, path: `byKey["app-config"]`},
	{rule: "a duplicate inside a map value is refused", in: `{"byKey":{"k":{"channel":"a","channel":"b"}}}`, into: list, kind: Duplicate, path: "byKey.k.channel"},
	{rule: "a key given twice in an interface value is refused", in: `{"any":{"a":[{"b":1,"b":2}]}}`, into: list, kind: Duplicate, path: "any.a[0].b"},
	{rule: "a key given twice at the top of an interface is refused", in: `{"a":1,"a":1}`, into: anyDoc, kind: Duplicate, path: "a"},
	{rule: "many members, one repeated late, are refused", in: `{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"c":2}`, into: anyDoc, kind: Duplicate, path: "c"},

	// Case variants of known names.
	{rule: "a member differing only in case is refused", in: `{"channel":"a","Channel":"b"}`, into: open, kind: CaseVariant, path: "Channel", message: `differs only in case from "channel"`},
	{rule: "a case variant alone is refused too", in: `{"CHANNEL":"b"}`, into: open, kind: CaseVariant, path: "CHANNEL"},
	{rule: "a case variant in options is refused", in: `{"options":{"CallTimeoutMs":5}}`, into: open, kind: CaseVariant, path: "options.CallTimeoutMs", message: `spell it "callTimeoutMs"`},
	{rule: "a case variant of an envelope member is refused", in: `{"method":"state.get","Method":"shutdown"}`, into: env, kind: CaseVariant, path: "Method"},
	{rule: "the Kelvin sign folds to k, as encoding/json folds it", in: `{"ta\u212aen":1}`, into: func() any {
		return &struct {
			Taken int `json:"taken"`
		}{}
	}, kind: CaseVariant},
	{rule: "a case variant in a slice element is refused", in: `{"items":[{"Topic":"x"}]}`, into: list, kind: CaseVariant, path: "items[0].Topic"},
	{rule: "map keys differing in case are two keys", in: `{"byKey":{"a":{},"A":{}}}`, into: list},

	// Unknown members, when asked.
	{rule: "an unknown member is refused when asked", in: `{"channel":"a","colour":"red"}`, into: open, opts: strict(), kind: Unknown, path: "colour", message: "known: channel, topic, source, options"},
	{rule: "an unknown nested member is refused when asked", in: `{"options":{"retry":{"maxAttempt":3}}}`, into: open, opts: strict(), kind: Unknown, path: "options.retry.maxAttempt"},
	{rule: "a misspelt expectedRevision is refused when asked", in: `{"topic":"t","data":1,"expectedRevison":"3"}`, into: set, opts: strict(), kind: Unknown, path: "expectedRevison"},

	// Lone surrogates, where they become Go strings.
	{rule: "a lone high surrogate in a string member is refused", in: `{"channel":"c\ud800"}`, into: open, kind: LoneSurrogate, path: "channel", message: "lone surrogate escape at byte 13"},
	{rule: "a lone low surrogate is refused", in: `{"channel":"c\udbff"}`, into: open, kind: LoneSurrogate, path: "channel"},
	{rule: "a high surrogate followed by another high one is refused", in: `{"channel":"\ud800\ud800"}`, into: open, kind: LoneSurrogate, path: "channel"},
	{rule: "a reversed pair is refused", in: `{"channel":"\udc00\ud800"}`, into: open, kind: LoneSurrogate},
	{rule: "a lone surrogate in a member name is refused", in: `{"chan\ud800":"a"}`, into: open, kind: LoneSurrogate, message: "a member name"},
	{rule: "a lone surrogate in a map key is refused", in: `{"byKey":{"\udfff":{}}}`, into: list, kind: LoneSurrogate, path: "byKey", message: "a member name"},
	{rule: "a lone surrogate in an interface string is refused", in: `{"any":["ok","\ud800"]}`, into: list, kind: LoneSurrogate, path: "any[1]"},
	{rule: "a lone surrogate in a []byte's base64 is refused", in: `{"bytes":"\ud800"}`, into: list, kind: LoneSurrogate, path: "bytes"},
	{rule: "a lone surrogate in an unknown member name is refused", in: `{"\ud800":1}`, into: open, kind: LoneSurrogate},

	// Invalid UTF-8, anywhere.
	{rule: "invalid UTF-8 in a string member is refused", in: "{\"channel\":\"c\xff\"}", into: open, kind: InvalidUTF8, path: "channel", message: "byte 13 is not valid UTF-8"},
	{rule: "invalid UTF-8 inside opaque data is refused, naming where", in: "{\"topic\":\"t\",\"data\":{\"a\":[1,\"\xc3(\"]}}", into: set, kind: InvalidUTF8, path: "data.a[1]"},
	{rule: "invalid UTF-8 in a member name is refused", in: "{\"ch\xffannel\":1}", into: open, kind: InvalidUTF8, message: "a member name"},
	{rule: "a UTF-8-encoded surrogate is invalid UTF-8", in: "{\"channel\":\"\xed\xa0\x80\"}", into: open, kind: InvalidUTF8, path: "channel"},
	{rule: "an overlong encoding is invalid UTF-8", in: "{\"channel\":\"\xc0\xaf\"}", into: open, kind: InvalidUTF8},

	// What encoding/json refuses, refused the same way, worded as rpc words it.
	{rule: "not JSON is a syntax error", in: `{"channel":`, into: open, kind: Syntax, message: "not valid JSON"},
	{rule: "garbage with invalid UTF-8 is a syntax error first", in: "\x00\x01binary\xff", into: open, kind: Syntax},
	{rule: "trailing data is a syntax error", in: `{"channel":"a"} x`, into: open, kind: Syntax},
	{rule: "a duplicate in broken JSON is a syntax error first", in: `{"channel":"a","channel":"b"`, into: open, kind: Syntax},
	{rule: "a wrong type names the member", in: `{"options":{"callTimeoutMs":"5"}}`, into: open, kind: Type, path: "options.callTimeoutMs", message: "want a number, got a JSON string"},
	{rule: "a wrong type in a slice element names its index", in: `{"items":[{"topic":"a"},{"topic":7}]}`, into: list, kind: Type, path: "items[1].topic", message: "want a string, got a JSON number"},
	{rule: "a wrong type in a map value names its key", in: `{"byKey":{"app-config":{"options":[1]}}}`, into: list, kind: Type, path: `byKey["app-config"].options`, message: "want an object, got a JSON array"},
	{rule: "an array for an object is a type error", in: `[1,2]`, into: open, kind: Type, message: "want an object, got a JSON array"},
	{rule: "a bad escape is a syntax error", in: `{"channel":"\x"}`, into: open, kind: Syntax},
}

func TestDecodeRules(t *testing.T) {
	for _, tc := range rules {
		t.Run(tc.rule, func(t *testing.T) {
			err := tc.opts.Decode([]byte(tc.in), tc.into())
			if tc.kind == 0 {
				require.NoError(t, err)
				// And it reads exactly as encoding/json reads it.
				got, want := tc.into(), tc.into()
				require.NoError(t, tc.opts.Decode([]byte(tc.in), got))
				require.NoError(t, json.Unmarshal([]byte(tc.in), want))
				require.Equal(t, want, got)
				return
			}
			var e *Error
			require.True(t, errors.As(err, &e), "got %v (%T), want an *Error", err, err)
			require.Equal(t, tc.kind, e.Kind, "kind of %q: %v", tc.in, err)
			if tc.path != "" {
				require.Equal(t, tc.path, e.Path, "path of %q: %v", tc.in, err)
			}
			require.Contains(t, err.Error(), tc.message)
			if e.Path != "" {
				require.True(t, strings.HasPrefix(err.Error(), e.Path+": "), "the message starts with the path: %v", err)
			}
		})
	}
}

func TestDecodeLeavesTheTargetAloneOnError(t *testing.T) {
	p := openParams{Channel: "kept"}
	require.Error(t, Decode([]byte(`{"channel":"a","Channel":"b"}`), &p))
	require.Equal(t, "kept", p.Channel)
	require.Error(t, Decode([]byte(`{"channel":"a"`), &p))
	require.Equal(t, "kept", p.Channel)
}

func TestDecodeBoundsLongNamesInErrors(t *testing.T) {
	long := strings.Repeat("n", 1<<20)
	err := Decode([]byte(`{"`+long+`":1,"`+long+`":2}`), &openParams{})
	var e *Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, Duplicate, e.Kind)
	require.Less(t, len(err.Error()), 400, "the message does not echo a megabyte")
	require.True(t, strings.HasSuffix(e.Member, "…"))
}

func TestDecodePromotesEmbeddedFieldsAsEncodingJSONDoes(t *testing.T) {
	type Inner struct {
		Topic string `json:"topic"`
	}
	type outer struct {
		Inner
		Channel string `json:"channel"`
	}
	var v outer
	require.NoError(t, Decode([]byte(`{"topic":"t","channel":"c"}`), &v))
	require.Equal(t, outer{Inner: Inner{Topic: "t"}, Channel: "c"}, v)
	err := Decode([]byte(`{"Topic":"t"}`), &v)
	var e *Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, CaseVariant, e.Kind)
}

func TestDecodeRecursiveType(t *testing.T) {
	type node struct {
		Name string `json:"name"`
		Kids []node `json:"kids"`
	}
	var n node
	require.NoError(t, Decode([]byte(`{"name":"a","kids":[{"name":"b","kids":[]}]}`), &n))
	err := Decode([]byte(`{"name":"a","kids":[{"name":"b","kids":[{"Name":"c"}]}]}`), &n)
	var e *Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, "kids[0].kids[0].Name", e.Path)
}
