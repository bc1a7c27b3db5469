package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A user who mistypes a flag must learn what was wrong and where the flags are listed;
// a silent exit 2 leaves them guessing. stdout stays empty: it is the protocol.
func TestBadFlagsPrintTheErrorAndAHint(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--tarce"}, []string{"unknown flag: --tarce"}},
		{[]string{"--call-timeout", "5"}, []string{`invalid argument "5" for "--call-timeout"`, "durations need a unit"}},
		{[]string{"--max-channels=many"}, []string{`invalid argument "many" for "--max-channels"`}},
		{[]string{"-x"}, []string{"unknown shorthand flag: 'x'"}},
		{[]string{"--store-file"}, []string{"flag needs an argument: --store-file"}},
	}
	for _, tc := range cases {
		t.Run(tc.args[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, tc.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(nil), &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "got %v, want an exit status", err)
			assert.Equal(t, 2, exit.ExitCode(), "exit code; stderr:\n%s", stderr.String())
			assert.Empty(t, stdout.String(), "stdout is the protocol")
			for _, want := range tc.want {
				assert.Contains(t, stderr.String(), want)
			}
			assert.Contains(t, stderr.String(), "statesync-sidecar --help", "the hint")
		})
	}
}
