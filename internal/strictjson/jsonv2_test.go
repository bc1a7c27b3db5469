//go:build goexperiment.jsonv2

package strictjson

import (
	jsonv2 "encoding/json/v2"
	"testing"
)

// Run with GOEXPERIMENT=jsonv2 only: how encoding/json/v2, which rejects duplicate names
// and invalid UTF-8 and matches names case-sensitively by default, compares with Decode
// on the rules and in cost. The build never depends on it.

func TestJSONv2OnTheRules(t *testing.T) {
	for _, tc := range rules {
		err := jsonv2.Unmarshal([]byte(tc.in), tc.into(), jsonv2.RejectUnknownMembers(tc.opts.DisallowUnknown))
		if (err == nil) != (tc.kind == 0) {
			t.Logf("differs: %s: Decode %v, v2 error %v", tc.rule, tc.kind == 0, err)
		}
	}
}

func BenchmarkJSONv2(b *testing.B) {
	for _, m := range []struct {
		name string
		in   []byte
		into func() any
	}{
		{"invalidate", []byte(`{"topic":"app-config","revision":"1234567","sourceId":"window-3","timestampMs":1733300000000}`), func() any { return &invalidateParams{} }},
		{"channel.open", []byte(`{"channel":"main-window/app-config","topic":"app-config","source":"host","options":{"callTimeoutMs":5000,"resyncIntervalMs":60000,"retry":{"maxAttempts":3,"initialDelayMs":100,"multiplier":2}}}`), func() any { return &openParams{} }},
		{"state.set/1KiB", stateSet(1 << 10), func() any { return &setParams{} }},
		{"state.set/256KiB", stateSet(256 << 10), func() any { return &setParams{} }},
	} {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(int64(len(m.in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := jsonv2.Unmarshal(m.in, m.into(), jsonv2.RejectUnknownMembers(true)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
