package strictjson

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// invalidateParams is what rpc and the engine read of an invalidate (~80 bytes).
type invalidateParams struct {
	Topic       string   `json:"topic"`
	Revision    string   `json:"revision"`
	Epoch       string   `json:"epoch"`
	SourceID    string   `json:"sourceId"`
	TimestampMs *float64 `json:"timestampMs"`
	Channel     *string  `json:"channel"`
}

// stateSet builds a state.set params with data of about n bytes, shaped like app state:
// an object of records with strings, numbers and a nested array.
func stateSet(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"topic":"app-config","expectedRevision":"41","data":{"items":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item number %d","tags":["a","b"],"score":%d.5,"on":true}`, i, i, i)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

func BenchmarkDecode(b *testing.B) {
	for _, m := range []struct {
		name string
		in   []byte
		into func() any
		opts Options
	}{
		{"invalidate", []byte(`{"topic":"app-config","revision":"1234567","sourceId":"window-3","timestampMs":1733300000000}`), func() any { return &invalidateParams{} }, Options{}},
		{"channel.open", []byte(`{"channel":"main-window/app-config","topic":"app-config","source":"host","options":{"callTimeoutMs":5000,"resyncIntervalMs":60000,"retry":{"maxAttempts":3,"initialDelayMs":100,"multiplier":2}}}`), func() any { return &openParams{} }, Options{DisallowUnknown: true}},
		{"state.set/1KiB", stateSet(1 << 10), func() any { return &setParams{} }, Options{DisallowUnknown: true}},
		{"state.set/256KiB", stateSet(256 << 10), func() any { return &setParams{} }, Options{DisallowUnknown: true}},
	} {
		b.Run(m.name+"/json.Unmarshal", func(b *testing.B) {
			b.SetBytes(int64(len(m.in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := json.Unmarshal(m.in, m.into()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(m.name+"/strictjson-check-only", func(b *testing.B) {
			b.SetBytes(int64(len(m.in)))
			b.ReportAllocs()
			t := reflect.TypeOf(m.into())
			for b.Loop() {
				if err := m.opts.check(m.in, t); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(m.name+"/strictjson", func(b *testing.B) {
			b.SetBytes(int64(len(m.in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := m.opts.Decode(m.in, m.into()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	in := stateSet(256 << 10)
	b.Run("CheckUTF8/256KiB", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			if err := CheckUTF8(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckSurrogates/256KiB", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			if err := CheckSurrogates(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
