// Package sidecarbin builds the real statesync-sidecar once for a test package, as
// go-plugin's helper process does, so tests spawn exactly the binary users get.
package sidecarbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Main builds cmd/statesync-sidecar with buildFlags (for example "-race", or "-tags",
// "nats") into a temporary folder, stores its path in *binary, runs the package's tests
// and exits with their status, removing the folder first.
func Main(m *testing.M, binary *string, buildFlags ...string) {
	dir, err := os.MkdirTemp("", "statesync-sidecar-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*binary = filepath.Join(dir, "statesync-sidecar")
	if runtime.GOOS == "windows" {
		*binary += ".exe"
	}
	args := append([]string{"build"}, buildFlags...)
	build := exec.Command("go", append(args, "-o", *binary, "github.com/state-sync/state-sync/cmd/statesync-sidecar")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the sidecar:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// A -race binary sleeps 1s at exit to flush its reports; exit-time tests measure the
	// sidecar, not that.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
