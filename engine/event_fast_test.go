package engine

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// parseEventFast must read exactly what the general path reads, whenever it takes a payload.
func FuzzParseEventFast(f *testing.F) {
	for _, seed := range []string{
		`{"topic":"app-config","revision":"42"}`,
		` {"revision":"18446744073709551615","topic":"t","epoch":"e","sourceId":"w1","timestampMs":1732521600000.5} `,
		`{"topic":"t","revision":"1","channel":"w","extra":{"a":[1,"}"]}}`,
		`{"topic":"t","revision":"1","Topic":"u"}`,
		`{"topic":"t","topic":"u","revision":"1"}`,
		`{"topic":null,"topic":"u","revision":"1"}`,
		`{"topic":"t","revision":"1","epoch":null,"sourceId":null,"timestampMs":null}`,
		`{"topic":"caf\u00e9","revision":"1"}`, `{"topic":"café","revision":"1"}`,
		`{"topic":"t","revision":"007"}`, `{"topic":" ","revision":"1"}`,
		`{"topic":"t","revision":1}`, `{"topic":"t","revision":"1","timestampMs":"5"}`,
		`{"topic":"t","revision":"1","timestampMs":1e400}`, `{"t\u006fpic":"t","revision":"1"}`,
		"{\"topic\":\"\xff\",\"revision\":\"1\"}", `[]`, `{}`, `{"topic":"t"`, `null`,
		// Bytes that are not UTF-8 in a member the event ignores: the general path refuses
		// them, so the fast path must not take the event.
		"{\"topic\":\"t\",\"revision\":\"1\",\"x\":\"\xff\"}", "{\"topic\":\"t\",\"revision\":\"1\",\"\xc3\":0}",
		// Invalid JSON in an ignored member, after the object, and in a name.
		`{"topic":"t","revision":"1","x":[1,]}`, `{"topic":"t","revision":"1"} x`, `{"topic":"t","revision":"1"}}`,
		"{\"topic\":\"t\",\"revision\":\"1\",\"a\x01\":0}", `{"topic":"t","revision":"1",}`,
		`{"topic":"t","revision":"1","REVISION":"2"}`, `{"topic":"t","revision":"1","x":{"topic":"u"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseEventFast(b)
		if !ok {
			return
		}
		slow, err := parseEventSlow(b)
		if err != nil {
			t.Fatalf("the fast path took %q, which the general path rejects: %v", b, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %+v, general %+v", b, fast, slow)
		}
	})
}

// Every event vector goes through both paths with the same outcome.
func TestParseEventFastOnVectors(t *testing.T) {
	raw, err := os.ReadFile("../testdata/events.json")
	if err != nil {
		t.Skip(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	checked := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
			if _, ok := v["topic"]; ok {
				b, _ := json.Marshal(v)
				if fast, ok := parseEventFast(b); ok {
					slow, err := parseEventSlow(b)
					if err != nil || !reflect.DeepEqual(fast, slow) {
						t.Errorf("%s: fast %+v, general %+v %v", b, fast, slow, err)
					}
					checked++
				}
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	if checked == 0 {
		t.Fatal("no vector took the fast path")
	}
}
