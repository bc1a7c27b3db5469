package rpc

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// splitSnapshot must read exactly what json.Unmarshal reads, whenever it takes an answer.
func FuzzSplitSnapshot(f *testing.F) {
	for _, seed := range []string{
		`{"revision":"42","data":{"a":[1,"x\"}"]}}`,
		`{"data":null,"epoch":"e1","revision":"7"}`,
		` { "revision" : "1" , "extra" : {"data":1} , "data" : "s" } `,
		`{"Revision":"1","data":1}`,
		`{"revision":"1","revision":"2","data":1}`,
		`{"rev\u0069sion":"1","data":1}`,
		`{"revision":1,"data":[]}`,
		`{}`, `{"data":{}}`, `{"revision":"9","data":"\u00e9\\"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != '{' || !json.Valid(b) {
			return
		}
		var fast snapshotResult
		if !splitSnapshot(b, &fast) {
			return
		}
		var slow snapshotResult
		require.NoError(t, json.Unmarshal(b, &slow), "splitSnapshot took what json.Unmarshal rejects: %q", b)
		require.Equal(t, slow, fast, "%q", b)
	})
}

func TestDecodeSnapshot(t *testing.T) {
	for _, tc := range []struct {
		raw, rev, epoch, data, errField string
	}{
		{raw: `{"revision":"42","data":{"a":"b"}}`, rev: "42", data: `{"a":"b"}`},
		{raw: `{"data": [1, 2] , "epoch":"e\u0031","revision":"3"}`, rev: "3", epoch: "e1", data: `[1, 2]`},
		{raw: `{"Revision":"5","DATA":null}`, errField: "Revision"},                  // no case folding: one reading
		{raw: `{"revision":"5","revision":"6","data":0}`, errField: "revision"},      // nor a repeated member
		{raw: `{"rev\u0069sion":"5","epoch":"e\ud800","data":0}`, errField: "epoch"}, // nor a lone surrogate
		{raw: `{"revision":"5","epoch":null,"data":0}`, rev: "5", data: `0`},
		{raw: `{"revision":5,"data":0}`, errField: "revision"},
		{raw: `{"revision":"5","epoch":7,"data":0}`, errField: "epoch"},
		{raw: `{"revision":"5"}`, errField: "data"},
		{raw: `[1]`, errField: "getSnapshot result"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			s, err := decodeSnapshot(json.RawMessage(tc.raw))
			if tc.errField != "" {
				require.ErrorContains(t, err, tc.errField)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.rev, string(s.Revision))
			require.Equal(t, tc.epoch, s.Epoch)
			require.Equal(t, tc.data, string(s.Data))
		})
	}
}

// BenchmarkDecodeSnapshot is one host answer read into a Snapshot: "split" is
// decodeSnapshot, "json.Unmarshal" the whole-object decode it replaced (a scan and a
// copy of data).
func BenchmarkDecodeSnapshot(b *testing.B) {
	for _, sz := range benchSizes {
		raw := json.RawMessage(`{"revision":"18446744073709551614","data":` + string(benchData(sz.size)) + `}`)
		b.Run(sz.name+"/split", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeSnapshot(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sz.name+"/json.Unmarshal", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				var r snapshotResult
				if err := json.Unmarshal(raw, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
