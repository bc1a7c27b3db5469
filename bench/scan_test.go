package main

import "testing"

// The harness reads frames lazily; it must read what a full decode reads.
func TestScanFrameAgreesWithFullDecode(t *testing.T) {
	frames := []string{
		`{"jsonrpc":"2.0","id":12,"method":"apply","params":{"channel":"c0001","topic":"bench","revision":"42","data":{"a":[1,"}"]}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"getSnapshot","params":{"topic":"bench","channel":"c0007"}}`,
		`{"id":5,"result":{"channel":"c0000","localRevision":"1"},"jsonrpc":"2.0"}`,
		`{"id":6,"error":{"code":-32001,"message":"unknown"},"jsonrpc":"2.0"}`,
		`{"jsonrpc":"2.0","method":"error","params":{"phase":"apply","channel":"c0002","error":{"message":"x","data":{"k":1}}}}`,
		`{"params":{"data":null,"revision":"7","channel":"c0003","topic":"bench"},"method":"apply","id":9,"jsonrpc":"2.0"}`,
	}
	for _, s := range frames {
		var fast, slow frame
		if !scanFrame([]byte(s), &fast) {
			t.Errorf("scanFrame gave up on %s", s)
			continue
		}
		if !slowFrame([]byte(s), &slow) {
			t.Fatalf("slowFrame failed on %s", s)
		}
		for _, c := range []struct {
			name string
			a, b []byte
		}{{"id", fast.id, slow.id}, {"method", fast.method, slow.method}, {"channel", fast.channel, slow.channel}, {"revision", fast.revision, slow.revision}} {
			if string(c.a) != string(c.b) {
				t.Errorf("%s: %s: lazy %q, full %q", s, c.name, c.a, c.b)
			}
		}
		if fast.response != slow.response {
			t.Errorf("%s: response %v vs %v", s, fast.response, slow.response)
		}
	}
	if _, ok := parseUint([]byte("18446744073709551616")); ok {
		t.Error("parseUint took a revision over u64")
	}
}

func TestPayloadHasTheAskedSize(t *testing.T) {
	for _, n := range []int{1 << 10, 256 << 10} {
		if got := len(payload(n)); got != n {
			t.Errorf("payload(%d) is %d bytes", n, got)
		}
	}
}
