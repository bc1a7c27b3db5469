package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRecordedSessions replays testdata/sessions/*.ndjson against the real binary. Each
// line is one step:
//
//	{"host": msg}      send msg; an id of "$captured" is the id of the last "$capture"
//	{"raw": "text"}    send the text as one line, as is
//	{"sidecar": msg}   a line from the sidecar must equal msg, where "$any" matches
//	                   any value and an id of "$capture" remembers the id; consecutive
//	                   sidecar steps match in any order (an answer and an apply the same
//	                   request caused race each other)
//	{"comment": "…"}   nothing
//
// The same files are the examples of docs/protocol.md and docs/debugging.md.
func TestRecordedSessions(t *testing.T) {
	files, err := filepath.Glob("../testdata/sessions/*.ndjson")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { replay(t, file) })
	}
}

func replay(t *testing.T, file string) {
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	cmd := exec.Command(binary)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	lines := make(chan []byte, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(lines)
	}()

	var (
		captured any
		group    []sidecarStep // consecutive sidecar steps not yet matched
	)
	flush := func() {
		for len(group) > 0 {
			var got []byte
			select {
			case got = <-lines:
			case <-time.After(testTimeout):
				t.Fatalf("%s:%d: the sidecar sent nothing, want %s", file, group[0].line, group[0].text)
			}
			require.NotNil(t, got, "%s:%d: the sidecar exited, want %s", file, group[0].line, group[0].text)
			var msg map[string]any
			require.NoError(t, json.Unmarshal(got, &msg), "%s: got %s", file, got)
			var diffs []string
			matched := -1
			for i, want := range group {
				w := want.msg
				if w["id"] == "$capture" {
					w = maps.Clone(w)
					w["id"] = "$any"
				}
				if d := match(w, msg, "$"); d == "" {
					matched = i
					break
				} else {
					diffs = append(diffs, fmt.Sprintf("line %d: %s", want.line, d))
				}
			}
			if matched < 0 {
				t.Fatalf("%s: unexpected line from the sidecar\n got: %s\nwhy: %s", file, got, strings.Join(diffs, "\n     "))
			}
			if group[matched].msg["id"] == "$capture" {
				captured = msg["id"]
			}
			group = append(group[:matched], group[matched+1:]...)
		}
	}
	for n, line := range bytes.Split(raw, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var step struct {
			Host    map[string]any `json:"host"`
			Raw     *string        `json:"raw"`
			Sidecar map[string]any `json:"sidecar"`
		}
		require.NoError(t, json.Unmarshal(line, &step), "%s:%d", file, n+1)
		if step.Sidecar != nil {
			group = append(group, sidecarStep{line: n + 1, text: string(line), msg: step.Sidecar})
			continue
		}
		flush()
		switch {
		case step.Host != nil:
			if step.Host["id"] == "$captured" {
				step.Host["id"] = captured
			}
			b, err := json.Marshal(step.Host)
			require.NoError(t, err)
			_, err = stdin.Write(append(b, '\n'))
			require.NoError(t, err)
		case step.Raw != nil:
			_, err := stdin.Write([]byte(*step.Raw + "\n"))
			require.NoError(t, err)
		}
	}
	flush()
}

type sidecarStep struct {
	line int
	text string
	msg  map[string]any
}

// match compares want and got as JSON values; "$any" in want matches anything.
func match(want, got any, path string) string {
	if want == "$any" {
		return ""
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: got %v, want an object", path, got)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return fmt.Sprintf("%s.%s: unexpected member %v", path, k, g[k])
			}
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Sprintf("%s.%s: missing, want %v", path, k, wv)
			}
			if d := match(wv, gv, path+"."+k); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: got %v, want %v", path, got, want)
		}
		for i := range w {
			if d := match(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Sprintf("%s: got %v, want %v", path, got, want)
		}
		return ""
	}
}
