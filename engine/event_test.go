package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The one-reading rule (issue 19): the fast path gives up on a case twin, a repeated or
// escaped name, and the general path refuses what encoding/json would read its own way.
func TestParseEventRefusesWhatReadersReadDifferently(t *testing.T) {
	for _, payload := range []string{
		`{"topic":"a","Topic":"b","revision":"1"}`,
		`{"topic":"a","revision":"1","topic":"b"}`,
		`{"topic":null,"topic":"u","revision":"1"}`,
		`{"topic":"a","revision":"1","epoch":null,"epoch":"e"}`,
		`{"topic":"a","\u0074opic":"b","revision":"1"}`,
		`{"topic":"a","revision":"1","REVISION":"2"}`,
		`{"topic":"a","revision":"1","sourceid":"w"}`,
		`{"topic":"c\ud800","revision":"1"}`,
		`{"topic":"c","revision":"1","sourceId":"w\udbff"}`,
	} {
		_, fast := parseEventFast([]byte(payload))
		require.False(t, fast, "%s: the fast path must give up", payload)
		_, err := ParseEvent([]byte(payload))
		var fieldErr *FieldError
		require.ErrorAs(t, err, &fieldErr, "%s", payload)
		require.NotEmpty(t, fieldErr.Field, "%s", payload)
	}
	_, err := ParseEvent([]byte(`{"topic":"a","Topic":"b","revision":"1"}`))
	require.EqualError(t, err, `Topic: unknown member, differs only in case from "topic": member names are case-sensitive, spell it "topic"`)
}
