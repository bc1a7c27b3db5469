package engine

import (
	"cmp"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// Fuzz targets for what the engine reads off a transport: revisions and invalidation
// events. `go test` runs their seed corpora (testdata/fuzz/<FuzzName>/ and the f.Add
// seeds); `task test:fuzz` and `task fuzz` run them under the fuzzer.

// errorBound is the most an error message may take, whatever the input's size: the
// quoted prefix is 64 bytes, each at most 4 bytes once escaped, plus the explanation.
const errorBound = 64*4 + 200

var canonicalRevision = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

// FuzzParseRevision checks ParseRevision, Compare and Next against strconv's u64: a
// string is accepted exactly when it is the canonical decimal form of a u64, and two
// accepted revisions compare as their numbers do.
func FuzzParseRevision(f *testing.F) {
	for _, s := range []string{"0", "1", "42", "007", "-1", "+1", "1e3", " 1", "1 ", "", "18446744073709551615", "18446744073709551616", "99999999999999999999", "184467440737095516150", "٣", "1\x00"} {
		f.Add(s, "41")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ra, errA := ParseRevision(a)
		na, numErr := strconv.ParseUint(a, 10, 64)
		wantOK := numErr == nil && canonicalRevision.MatchString(a)
		if (errA == nil) != wantOK {
			t.Fatalf("ParseRevision(%q): got err %v, want ok=%v (strconv: %v)", a, errA, wantOK, numErr)
		}
		if errA != nil {
			if len(errA.Error()) > errorBound {
				t.Fatalf("ParseRevision(%d bytes): error of %d bytes, want at most %d: %.200s", len(a), len(errA.Error()), errorBound, errA)
			}
			return
		}
		if string(ra) != strconv.FormatUint(na, 10) {
			t.Fatalf("ParseRevision(%q) = %q, want %q", a, ra, strconv.FormatUint(na, 10))
		}
		next, err := ra.Next()
		if na == 1<<64-1 {
			if err == nil {
				t.Fatalf("Next(%s): got %s, want an error at the largest u64", ra, next)
			}
		} else if err != nil || string(next) != strconv.FormatUint(na+1, 10) {
			t.Fatalf("Next(%s) = %q, %v, want %d", ra, next, err, na+1)
		}
		rb, errB := ParseRevision(b)
		if errB != nil {
			return
		}
		nb, _ := strconv.ParseUint(b, 10, 64)
		if got, want := ra.Compare(rb), cmp.Compare(na, nb); got != want {
			t.Fatalf("Compare(%s, %s) = %d, want %d", ra, rb, got, want)
		}
		if ra.Compare(rb) != -rb.Compare(ra) {
			t.Fatalf("Compare(%s, %s) is not antisymmetric", ra, rb)
		}
	})
}

// FuzzParseEvent feeds arbitrary payloads to ParseEvent: it never panics; what it accepts
// has a non-blank topic and a canonical revision and survives a round trip; what it
// refuses is a *FieldError naming a field, with a bounded message. For payloads built
// from a fuzzed topic and revision, it accepts exactly the valid ones.
func FuzzParseEvent(f *testing.F) {
	for _, seed := range []string{
		`{"topic":"app-config","revision":"42"}`,
		`{"topic":"app-config","revision":"42","epoch":"boot-1","sourceId":"w1","timestampMs":1738123456789}`,
		`{"topic":"  ","revision":"1"}`,
		`{"topic":"t","revision":"007"}`,
		`{"topic":"t","revision":42}`,
		`{"topic":"t","revision":"1","epoch":7}`,
		`{"topic":"t","revision":"1","timestampMs":"now"}`,
		`{"topic":"t","revision":"1","extra":{"nested":[1,2,3]}}`,
		`{"TOPIC":"t","Revision":"1"}`,
		`{"topic":"t","revision":"1","topic":"u"}`,
		`[1,2]`, `null`, `"string"`, `{`, ``, `{"topic":null,"revision":null}`,
	} {
		f.Add([]byte(seed), "app-config", "1")
	}
	// Under the byte limit as given, over it once encoding/json has replaced each invalid
	// byte with U+FFFD (three bytes): found by the fuzzer in CI.
	f.Add([]byte(`{}`), strings.Repeat("\xff", 400), "0")
	f.Add([]byte(`{}`), strings.Repeat("a", MaxNameBytes), "1")
	f.Add([]byte(`{}`), "\ufeff\u0085", "1")
	f.Fuzz(func(t *testing.T, payload []byte, topic, revision string) {
		checkEvent(t, payload)

		built, err := json.Marshal(map[string]string{"topic": topic, "revision": revision})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := ParseEvent(built)
		// encoding/json replaces invalid UTF-8 with U+FFFD on the way out: judge and
		// compare with what the payload says, not with the fuzzed strings.
		var back struct{ Topic, Revision string }
		_ = json.Unmarshal(built, &back)
		_, revErr := ParseRevision(back.Revision)
		wantOK := !blankInJavaScript(back.Topic) && len(back.Topic) <= MaxNameBytes &&
			revErr == nil && json.Valid(built)
		if (err == nil) != wantOK {
			t.Fatalf("ParseEvent(%s): got %v, want ok=%v", built, err, wantOK)
		}
		if err == nil && (ev.Topic != back.Topic || string(ev.Revision) != back.Revision) {
			t.Fatalf("ParseEvent(%s) = %+v, want topic %q revision %q", built, ev, back.Topic, back.Revision)
		}
	})
}

// blankInJavaScript is the oracle for ValidateTopic's blank rule, written from the
// definitions rather than from isBlank: JavaScript's trim() removes what Go's
// unicode.IsSpace does, except U+0085 (next line), plus U+FEFF (byte order mark).
func blankInJavaScript(s string) bool {
	return strings.TrimFunc(s, func(r rune) bool {
		return (unicode.IsSpace(r) && r != 0x85) || r == 0xFEFF
	}) == ""
}

func checkEvent(t *testing.T, payload []byte) {
	t.Helper()
	ev, err := ParseEvent(payload)
	if err != nil {
		var fieldErr *FieldError
		if !errors.As(err, &fieldErr) || fieldErr.Field == "" {
			t.Fatalf("ParseEvent(%.200q): error %v (%T), want a *FieldError naming the field", payload, err, err)
		}
		if len(err.Error()) > errorBound {
			t.Fatalf("ParseEvent(%d bytes): error of %d bytes, want at most %d: %.300s", len(payload), len(err.Error()), errorBound, err)
		}
		return
	}
	if strings.TrimSpace(ev.Topic) == "" {
		t.Fatalf("ParseEvent(%.200q) accepted a blank topic", payload)
	}
	if _, err := ParseRevision(string(ev.Revision)); err != nil {
		t.Fatalf("ParseEvent(%.200q) accepted revision %q: %v", payload, ev.Revision, err)
	}
	again, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal %+v: %v", ev, err)
	}
	ev2, err := ParseEvent(again)
	if err != nil {
		t.Fatalf("ParseEvent(%s), the re-encoding of an accepted event: %v", again, err)
	}
	if ev2.Topic != ev.Topic || ev2.Revision != ev.Revision || ev2.Epoch != ev.Epoch || ev2.SourceID != ev.SourceID ||
		(ev.TimestampMs == nil) != (ev2.TimestampMs == nil) || (ev.TimestampMs != nil && *ev.TimestampMs != *ev2.TimestampMs) {
		t.Fatalf("round trip: %+v became %+v", ev, ev2)
	}
}
