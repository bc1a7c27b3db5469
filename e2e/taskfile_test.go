package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Taskfile as a user runs it: go tool -modfile=tools/go.mod task …, its output piped
// (as in CI), never a terminal.

// runTask runs a task of the repository's Taskfile with extra environment variables; it
// returns stdout, stderr and the exit code.
func runTask(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout*3)
	defer cancel()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "-modfile=tools/go.mod", "task"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(withoutColorSettings(os.Environ()), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(nil), &stdout, &stderr
	err = cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err, "go tool task %v", args)
	}
	return stdout.String(), stderr.String(), code
}

// withoutColorSettings drops the caller's colour settings, so each test sets its own. CI
// is one of them: go-task colours its own lines whenever CI is set, pipe or not (for CI
// services that show colours), which is why .ci/run sets NO_COLOR.
func withoutColorSettings(env []string) []string {
	var kept []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NO_COLOR=") && !strings.HasPrefix(kv, "FORCE_COLOR=") && !strings.HasPrefix(kv, "CI=") {
			kept = append(kept, kv)
		}
	}
	return kept
}

func TestTaskSetupBrowserHonoursChromiumPath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-chromium-here")
	_, stderr, code := runTask(t, []string{"CHROMIUM_PATH=" + missing}, "setup:browser")
	assert.NotEqual(t, 0, code, "a CHROMIUM_PATH that is not there must fail, not install another browser")
	assert.Contains(t, stderr, "CHROMIUM_PATH="+missing+" is not an executable file")
	assert.NotContains(t, stderr, "apt-get", "nothing installed when the user named a browser")

	browser := filepath.Join(dir, "chromium")
	require.NoError(t, os.WriteFile(browser, []byte("#!/bin/sh\n"), 0o755))
	stdout, stderr, code := runTask(t, []string{"CHROMIUM_PATH=" + browser}, "setup:browser")
	assert.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Contains(t, stdout+stderr, `Task "setup:browser" is up to date`)
}

func TestTaskNodeTurnsColoursOffOutsideATerminal(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("the sdk-ts tasks need Node.js 20 or later on PATH: %v", err)
	}
	// vitest colours whenever TERM is not "dumb", terminal or not (tinyrainbow): the task
	// must say NO_COLOR when its stdout is a pipe, and leave an explicit FORCE_COLOR alone.
	probe := `CMD=node -e "process.stdout.write('NO_COLOR=' + process.env.NO_COLOR)"`
	stdout, stderr, code := runTask(t, []string{"TERM=xterm-256color"}, "node", probe)
	require.Equal(t, 0, code, "stderr:\n%s", stderr)
	assert.Contains(t, stdout, "NO_COLOR=1")
	assert.NotContains(t, stdout+stderr, "\x1b[", "raw ANSI codes in piped output")

	stdout, stderr, code = runTask(t, []string{"TERM=xterm-256color", "FORCE_COLOR=1"}, "node", probe)
	require.Equal(t, 0, code, "stderr:\n%s", stderr)
	assert.Contains(t, stdout, "NO_COLOR=undefined")
}

func TestTaskTestEndsWithOneSummaryLine(t *testing.T) {
	summary, stderr, code := runTask(t, nil, "--summary", "test")
	require.Equal(t, 0, code, "stderr:\n%s", stderr)
	steps := regexp.MustCompile(`(?m)^ - Task: (\S+)$`).FindAllStringSubmatch(summary, -1)
	require.NotEmpty(t, steps, "task --summary test:\n%s", summary)
	assert.Equal(t, "test:summary", steps[len(steps)-1][1], "the last step of task test")
	assert.Contains(t, summary, " - Task: bench:quick", "the benchmark table the summary line mentions")

	stdout, stderr, code := runTask(t, nil, "test:summary")
	require.Equal(t, 0, code, "stderr:\n%s", stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 1, "one line, nothing else: %q", stdout)
	line := lines[0]
	assert.True(t, strings.HasPrefix(line, "task test: OK, every step passed"), "got %q", line)
	assert.Contains(t, line, "The benchmark table above is reported, not asserted.")
	// CI reads a final "N passed, N failed" line as counted results: this line must not be one.
	assert.NotRegexp(t, `\d+ passed`, line)
	assert.NotRegexp(t, `\d+ failed`, line)
}
