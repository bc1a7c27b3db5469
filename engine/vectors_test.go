package engine

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// revisionCase is a case of testdata/revisions.json: either a validity case (revision,
// valid) or a comparison case (a, b, want).
type revisionCase struct {
	Description string  `json:"description"`
	Revision    *string `json:"revision"`
	Valid       *bool   `json:"valid"`
	A           string  `json:"a"`
	B           string  `json:"b"`
	Want        *int    `json:"want"`
}

type revisionGroup struct {
	Description string         `json:"description"`
	Cases       []revisionCase `json:"cases"`
}

func TestRevisionVectors(t *testing.T) {
	var groups []revisionGroup
	readVectors(t, "revisions.json", &groups)
	require.NotEmpty(t, groups)
	for _, g := range groups {
		t.Run(g.Description, func(t *testing.T) {
			require.NotEmpty(t, g.Cases)
			for _, tc := range g.Cases {
				t.Run(tc.Description, func(t *testing.T) {
					switch {
					case tc.Revision != nil && tc.Valid != nil:
						rev, err := ParseRevision(*tc.Revision)
						if *tc.Valid {
							require.NoError(t, err, "ParseRevision(%q): got error, want valid", *tc.Revision)
							require.Equal(t, Revision(*tc.Revision), rev)
							return
						}
						require.Error(t, err, "ParseRevision(%q): got valid, want an error", *tc.Revision)
						require.Empty(t, rev)
					case tc.Want != nil:
						a, err := ParseRevision(tc.A)
						require.NoError(t, err, "a")
						b, err := ParseRevision(tc.B)
						require.NoError(t, err, "b")
						got := a.Compare(b)
						require.Equal(t, *tc.Want, got, "Compare(%s, %s): got %d, want %d", a, b, got, *tc.Want)
						require.Equal(t, -*tc.Want, b.Compare(a), "Compare(%s, %s) must be the opposite", b, a)
					default:
						t.Fatalf("case %q has neither {revision, valid} nor {a, b, want}", tc.Description)
					}
				})
			}
		})
	}
}

func TestRevisionErrorsSayWhatIsWrongAndStayBounded(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"007", "leading zeros"},
		{"1e3", "only the digits"},
		{"18446744073709551616", "largest u64"},
		{"100000000000000000000", "longer than 20 digits"},
	} {
		_, err := ParseRevision(tc.in)
		require.ErrorContains(t, err, tc.want, "ParseRevision(%q)", tc.in)
	}
	_, err := ParseRevision(strings.Repeat("x", 1<<20))
	require.Error(t, err)
	require.Less(t, len(err.Error()), 200, "error on a 1 MiB revision: got %d bytes, want a bounded message", len(err.Error()))
}

func TestRevisionNext(t *testing.T) {
	for _, tc := range []struct{ in, want Revision }{
		{"0", "1"},
		{"", "1"},
		{"9", "10"},
		{"41", "42"},
		{"199", "200"},
		{"9999999999999999999", "10000000000000000000"},
		{"18446744073709551614", MaxRevision},
	} {
		got, err := tc.in.Next()
		require.NoError(t, err, "%q.Next()", tc.in)
		require.Equal(t, tc.want, got, "%q.Next(): got %s, want %s", tc.in, got, tc.want)
	}
	_, err := MaxRevision.Next()
	require.Error(t, err, "MaxRevision.Next(): got no error, want one")
}

type eventCase struct {
	Description string          `json:"description"`
	Event       json.RawMessage `json:"event"`
	Valid       bool            `json:"valid"`
	Field       string          `json:"field"`
}

type eventGroup struct {
	Description string      `json:"description"`
	Cases       []eventCase `json:"cases"`
}

func readEventVectors(t *testing.T) []eventGroup {
	var groups []eventGroup
	readVectors(t, "events.json", &groups)
	require.NotEmpty(t, groups)
	return groups
}

func TestEventVectors(t *testing.T) {
	for _, g := range readEventVectors(t) {
		t.Run(g.Description, func(t *testing.T) {
			require.NotEmpty(t, g.Cases)
			for _, tc := range g.Cases {
				t.Run(tc.Description, func(t *testing.T) {
					ev, err := ParseEvent(tc.Event)
					if tc.Valid {
						require.NoError(t, err, "ParseEvent(%s): got error, want valid", tc.Event)
						var want struct {
							Topic    string `json:"topic"`
							Revision string `json:"revision"`
							SourceID string `json:"sourceId"`
							Epoch    string `json:"epoch"`
						}
						require.NoError(t, json.Unmarshal(tc.Event, &want))
						require.Equal(t, want.Topic, ev.Topic, "topic is kept exactly")
						require.Equal(t, Revision(want.Revision), ev.Revision)
						require.Equal(t, want.SourceID, ev.SourceID)
						require.Equal(t, want.Epoch, ev.Epoch)
						return
					}
					require.Error(t, err, "ParseEvent(%s): got valid, want an error", tc.Event)
					var ferr *FieldError
					require.True(t, errors.As(err, &ferr), "ParseEvent(%s): got %T %v, want a *FieldError", tc.Event, err, err)
					require.Equal(t, tc.Field, ferr.Field, "ParseEvent(%s): got field %q (%v), want %q", tc.Event, ferr.Field, err, tc.Field)
				})
			}
		})
	}
}

func TestEventNotJSONIsAFieldError(t *testing.T) {
	for _, payload := range []string{``, `   `, `{`, `{"topic":"app-config","revision":"1"`, `{"topic":}`, "\x00", `nul`} {
		_, err := ParseEvent(json.RawMessage(payload))
		var ferr *FieldError
		require.True(t, errors.As(err, &ferr), "ParseEvent(%q): got %v, want a *FieldError", payload, err)
		require.Equal(t, "event", ferr.Field, "ParseEvent(%q)", payload)
	}
}

func TestEventTimestampIsKept(t *testing.T) {
	ev, err := ParseEvent(json.RawMessage(`{"topic":"t","revision":"1","timestampMs":1738123456789}`))
	require.NoError(t, err)
	require.NotNil(t, ev.TimestampMs)
	require.Equal(t, float64(1738123456789), *ev.TimestampMs)
}

// nameCase is one topic of testdata/names.json: Name repeated Repeat times (once when 0).
type nameCase struct {
	Description string `json:"description"`
	Name        string `json:"name"`
	Repeat      int    `json:"repeat"`
	Valid       bool   `json:"valid"`
}

// The TypeScript SDK loops over the same vectors (sdk-ts/test/names.test.ts): the two
// accept the same topics.
func TestNameVectors(t *testing.T) {
	var groups []struct {
		Description string     `json:"description"`
		Cases       []nameCase `json:"cases"`
	}
	readVectors(t, "names.json", &groups)
	require.NotEmpty(t, groups)
	for _, g := range groups {
		t.Run(g.Description, func(t *testing.T) {
			require.NotEmpty(t, g.Cases)
			for _, tc := range g.Cases {
				t.Run(tc.Description, func(t *testing.T) {
					name := strings.Repeat(tc.Name, max(tc.Repeat, 1))
					got, err := ValidateTopic(name)
					if tc.Valid {
						require.NoError(t, err, "ValidateTopic(%q): got an error, want valid", name)
						require.Equal(t, name, got, "the topic is kept as is")
						_, err = ParseEvent(mustJSON(t, map[string]string{"topic": name, "revision": "1"}))
						require.NoError(t, err, "ParseEvent with topic %q", name)
						return
					}
					require.Error(t, err, "ValidateTopic(%q): got valid, want an error", name)
					var ferr *FieldError
					require.ErrorAs(t, err, &ferr)
					require.Equal(t, "topic", ferr.Field)
					_, err = ParseEvent(mustJSON(t, map[string]string{"topic": name, "revision": "1"}))
					require.Error(t, err, "ParseEvent with topic %q: got valid, want an error", name)
				})
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
