package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDistBuildsEveryTauriTarget runs the real dist build and checks every file name,
// the checksums, and that the binary for this machine runs and tells its version.
func TestDistBuildsEveryTauriTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles six binaries")
	}
	out := t.TempDir()
	require.NoError(t, build(out, "9.8.7"))

	want := map[string]bool{
		"statesync-sidecar-x86_64-unknown-linux-gnu":    true,
		"statesync-sidecar-aarch64-unknown-linux-gnu":   true,
		"statesync-sidecar-x86_64-apple-darwin":         true,
		"statesync-sidecar-aarch64-apple-darwin":        true,
		"statesync-sidecar-x86_64-pc-windows-msvc.exe":  true,
		"statesync-sidecar-aarch64-pc-windows-msvc.exe": true,
		"SHA256SUMS": true,
	}
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Name()] = true
	}
	require.Equal(t, want, got)

	sums, err := os.Open(filepath.Join(out, "SHA256SUMS"))
	require.NoError(t, err)
	defer sums.Close()
	lines := 0
	for sc := bufio.NewScanner(sums); sc.Scan(); lines++ {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		require.True(t, ok, "line %q", sc.Text())
		b, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err)
		h := sha256.Sum256(b)
		require.Equal(t, hex.EncodeToString(h[:]), sum, name)
	}
	require.Equal(t, 6, lines)

	for _, target := range Targets {
		if target.GOOS != runtime.GOOS || target.GOARCH != runtime.GOARCH {
			continue
		}
		b, err := exec.Command(filepath.Join(out, target.FileName()), "--version").Output()
		require.NoError(t, err)
		require.Regexp(t, `^statesync-sidecar 9\.8\.7 \(\S+\)\n$`, string(b))
		return
	}
	t.Fatalf("no target for this machine (%s/%s)", runtime.GOOS, runtime.GOARCH)
}
