package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/stretchr/testify/require"
)

// runWriter runs c's writer as Serve does; stop returns once every frame sent before it
// is written.
func runWriter(c *conn) (stop func()) {
	var wg sync.WaitGroup
	wg.Go(c.out.run)
	return func() {
		c.out.close()
		wg.Wait()
	}
}

// The hand-written apply encoding must say what json.Marshal(applyParams) says: a field
// added to applyParams and not to appendApplyHead fails here.
func TestApplyEncodingMatchesJSONMarshal(t *testing.T) {
	var p applyParams
	v := reflect.ValueOf(&p).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Type() == reflect.TypeFor[json.RawMessage]():
			f.Set(reflect.ValueOf(json.RawMessage(`{"theme":"dark","n":[1,2.5,null]}`)))
		case f.Kind() == reflect.String:
			f.SetString(fmt.Sprintf("v%d", i))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		default:
			t.Fatalf("applyParams.%s has a type appendApplyHead does not know: %s", v.Type().Field(i).Name, f.Type())
		}
	}
	for _, variant := range []struct {
		epoch   string
		deleted bool
	}{{p.Epoch, true}, {"", true}, {p.Epoch, false}} {
		p.Epoch, p.Deleted = variant.epoch, variant.deleted
		want, err := json.Marshal(p)
		require.NoError(t, err)
		var out bytes.Buffer
		s := newConn(NDJSON, strings.NewReader(""), &out, 1<<20, nil)
		stop := runWriter(s)
		require.NoError(t, s.writeCall("7", "apply", p))
		stop()
		var msg struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      int             `json:"id"`
			Method  string          `json:"method"`
			Params  json.RawMessage `json:"params"`
		}
		require.NoError(t, json.Unmarshal(out.Bytes(), &msg), out.String())
		require.Equal(t, "2.0", msg.JSONRPC)
		require.Equal(t, 7, msg.ID)
		require.Equal(t, "apply", msg.Method)
		require.JSONEq(t, string(want), string(msg.Params))
		require.Equal(t, 1, bytes.Count(out.Bytes(), []byte("\n")), "one line")
	}
}

func TestApplyEncodingEscapesNames(t *testing.T) {
	p := applyParams{Channel: "w\"1\\\n<é>\u2028", Topic: "t", Revision: "3", Data: json.RawMessage(`1`)}
	var out bytes.Buffer
	s := newConn(NDJSON, strings.NewReader(""), &out, 1<<20, nil)
	stop := runWriter(s)
	require.NoError(t, s.writeCall("1", "apply", p))
	stop()
	var msg struct {
		Params applyParams `json:"params"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &msg), out.String())
	require.Equal(t, p.Channel, msg.Params.Channel)
}

// Data is written as it came, unless it holds a raw CR or LF, which would split the line.
func TestApplyDataStaysOnOneLine(t *testing.T) {
	cases := map[string]string{
		"verbatim":   `{"a": [1, 2],  "b":"x<y"}`,
		"lf":         "{\n  \"a\": 1\n}",
		"cr":         "{\"a\":\r1}",
		"empty":      ``,
		"escaped-lf": `"line\nbreak"`,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			s := newConn(NDJSON, strings.NewReader(""), &out, 1<<20, nil)
			stop := runWriter(s)
			p := applyParams{Channel: "c", Topic: "t", Revision: "1", Data: json.RawMessage(data)}
			require.NoError(t, s.writeCall("1", "apply", p))
			require.NoError(t, s.writeCall("2", "apply", p)) // the second from lineSafe's memory
			stop()
			lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
			require.Len(t, lines, 2, out.String())
			for _, line := range lines {
				require.NotContains(t, string(line), "\r")
				var msg struct {
					Params struct {
						Data json.RawMessage `json:"data"`
					} `json:"params"`
				}
				require.NoError(t, json.Unmarshal(line, &msg))
				switch {
				case data == "":
					require.Equal(t, "null", string(msg.Params.Data))
				case !strings.ContainsAny(data, "\r\n"):
					require.Equal(t, data, string(msg.Params.Data), "written byte for byte")
				default:
					require.JSONEq(t, data, string(msg.Params.Data))
				}
			}
		})
	}
}

// splitEnvelope must read exactly what json.Unmarshal reads, whenever it takes a message.
func FuzzSplitEnvelope(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"t","revision":"1"}}`,
		`{"jsonrpc":"2.0","id":7,"result":{"revision":"3","data":{"a":"x\"}y","b":[1,{"c":null}]}}}`,
		`{"jsonrpc":"2.0","id":"a\"b","error":{"code":-1,"message":"m","data":[true,false]}}`,
		` { "jsonrpc" : "2.0" , "id" : 1 , "method" : "m" , "params" : [ ] } `,
		`{"jsonrpc":"2.0","Method":"m"}`,
		`{"jsonrpc":"2.0","id":1,"id":2,"result":0}`,
		`{"json\u0072pc":"2.0","method":"m"}`,
		`{"jsonrpc":"2.0","method":"m","extra":{"deep":[[[]]]}}`,
		`{"jsonrpc":"2.0","method":"m","params":"\\"}`,
		`{}`, `[]`, `{"a":}`, `{"jsonrpc":"2.0","result":null,"id":-0.5e3}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast envelope
		if !splitEnvelope(b, &fast) {
			return
		}
		var slow envelope
		require.NoError(t, json.Unmarshal(b, &slow), "splitEnvelope took what json.Unmarshal rejects: %q", b)
		require.Equal(t, slow, fast, "%q", b)
	})
}

// A result's envelope is written by hand (resultHead, resultTail) and must be the bytes
// jsonrpc2.Response.MarshalJSON wrote before it: hosts and the docs' transcripts see no
// change.
func TestResultEnvelopeMatchesJSONRPC2(t *testing.T) {
	ids := []jsonrpc2.ID{{Num: 0}, {Num: 1}, {Num: 1<<64 - 1}, {Str: "a", IsString: true}, {Str: "", IsString: true},
		{Str: "<&>\"\\\u2028é\x00", IsString: true}, {Str: "\xff", IsString: true}}
	results := []any{nil, struct{}{}, map[string]any{"html": "<&>", "n": 1.5}, []string{"a"}, initializeResult{ProtocolVersion: "1"}}
	for _, id := range ids {
		for _, result := range results {
			b, err := json.Marshal(result)
			require.NoError(t, err)
			got := slices.Concat(resultHead(id), b, resultTail)
			resp := jsonrpc2.Response{ID: id}
			require.NoError(t, resp.SetResult(result))
			want, err := resp.MarshalJSON()
			require.NoError(t, err)
			require.Equal(t, string(want), string(got), "id %+v, result %v", id, result)
		}
	}
}
