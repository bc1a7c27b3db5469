package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, refuses whatever json.Unmarshal refuses,
// decodes what it accepts exactly as json.Unmarshal does, and only ever fails with an
// *Error.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"channel":"a","topic":"t","options":{"callTimeoutMs":5,"retry":{"maxAttempts":3}}}`,
		`{"channel":"a","Channel":"b"}`,
		`{"channel":"a","channel":"b"}`,
		`{"\u0063hannel":"a"}`,
		`{"channel":"c\ud800"}`,
		`{"channel":"c\udbff"}`,
		`{"channel":"\ud83d\ude00"}`,
		`{"chan\ud800":1}`,
		"{\"channel\":\"\xc3(\xff\"}",
		"{\"topic\":\"t\",\"data\":\"\xed\xa0\x80\"}",
		`{"topic":"t","data":{"a":1,"a":2},"expectedRevision":"3"}`,
		`{"items":[{"topic":"a"},{"Topic":"b"}],"byKey":{"k":{},"k":{}},"any":{"x":["\udc00"]}}`,
		`{"ta\u212aen":1}`,
		`[1,2]`, `null`, `"s"`, `{}`, `{"channel":`, `{"a":1}x`, `{"channel":"\\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, target := range []func() any{
			func() any { return &openParams{} },
			func() any { return &setParams{} },
			func() any { return &listDoc{} },
			func() any { var v any; return &v },
		} {
			for _, opts := range []Options{{}, {DisallowUnknown: true}} {
				got, want := target(), target()
				err := opts.Decode(data, got)
				var wantErr error
				if opts.DisallowUnknown {
					dec := json.NewDecoder(bytes.NewReader(data))
					dec.DisallowUnknownFields()
					wantErr = dec.Decode(want)
					if wantErr == nil && dec.More() {
						wantErr = errors.New("trailing data")
					}
					if wantErr == nil {
						// Decoder stops after one value; Unmarshal also refuses trailing garbage.
						wantErr = json.Unmarshal(data, target())
					}
				} else {
					wantErr = json.Unmarshal(data, want)
				}
				if err != nil {
					var e *Error
					if !errors.As(err, &e) {
						t.Fatalf("Decode(%q) into %T: got %v (%T), want an *Error", data, got, err, err)
					}
					continue
				}
				if wantErr != nil {
					t.Fatalf("Decode(%q) into %T %+v accepted what encoding/json refuses: %v", data, got, opts, wantErr)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Decode(%q) into %T: got %#v, want %#v as json.Unmarshal reads it", data, got, got, want)
				}
			}
		}
	})
}
