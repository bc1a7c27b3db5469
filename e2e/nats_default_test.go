package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDefaultBuildHasNoNATS: the default build leaves the NATS client out (it would cost
// every start its inits), and says how to get it when --nats-url is given.
func TestDefaultBuildHasNoNATS(t *testing.T) {
	cmd := exec.CommandContext(testContext(t), binary, "--nats-url", "nats://127.0.0.1:4222")
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdin = &stderr, strings.NewReader("")
	require.Error(t, cmd.Run())
	require.Equal(t, 1, cmd.ProcessState.ExitCode())
	require.Contains(t, stderr.String(), "built without the NATS store: build it with -tags nats")

	out, err := exec.Command("go", "version", "-m", binary).Output()
	require.NoError(t, err)
	require.NotContains(t, string(out), "github.com/nats-io/", "the default build links the NATS client")
}
