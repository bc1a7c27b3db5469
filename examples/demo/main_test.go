package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDemoShowsTheProductWorking runs the README's demo against a freshly built sidecar
// and checks the story it tells, so that the first thing a newcomer runs never rots.
func TestDemoShowsTheProductWorking(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, ""))
	text := regexp.MustCompile(`\+\d+\.\dms`).ReplaceAllString(out.String(), "+T")
	t.Log("\n" + text)

	// Every window applied both store writes, and the late window got the latest at once.
	for _, w := range windows {
		require.Contains(t, text, "+T  "+pad(w)+"apply revision 1 {\"theme\":\"dark\",\"fontSize\":14}")
		require.Contains(t, text, "+T  "+pad(w)+"apply revision 2 {\"theme\":\"dark\",\"fontSize\":16}")
		require.Contains(t, text, "+T  "+pad(w+"/view")+"apply revision 2 {\"zoom\":125}")
	}
	require.Contains(t, text, "about          opened late → at revision 2 at once")
	require.Equal(t, 1, strings.Count(text, "about          apply revision"), "the late window applies once")
	require.Contains(t, text, "Summary: 13 applies; the store answered part 1 with 0 host fetches; part 2 cost 1 getSnapshot for 3 windows.")

	// Writes come before the applies they cause.
	set1 := strings.Index(text, "state.set {\"theme\":\"dark\",\"fontSize\":14} → revision 1")
	apply1 := strings.Index(text, "apply revision 1 {\"theme\"")
	require.True(t, set1 >= 0 && apply1 > set1, "state.set at %d, first apply at %d", set1, apply1)
}

func pad(s string) string { return s + strings.Repeat(" ", 15-len(s)) }
