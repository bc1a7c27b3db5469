// Command dist cross-compiles statesync-sidecar for every platform Tauri and Electron
// ship on, named the way Tauri's bundle.externalBin expects
// (statesync-sidecar-<target-triple>[.exe]), with SHA-256 checksums.
//
//	go tool -modfile=tools/go.mod task dist      (or: go run ./internal/dist --out dist)
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
)

// Target is one platform: Go's GOOS/GOARCH and the Rust target triple Tauri names it by.
type Target struct {
	GOOS, GOARCH, Triple string
}

// Targets are the platforms of a desktop app: Linux (gnu), macOS, Windows (msvc), each on
// x86_64 and aarch64.
var Targets = []Target{
	{"linux", "amd64", "x86_64-unknown-linux-gnu"},
	{"linux", "arm64", "aarch64-unknown-linux-gnu"},
	{"darwin", "amd64", "x86_64-apple-darwin"},
	{"darwin", "arm64", "aarch64-apple-darwin"},
	{"windows", "amd64", "x86_64-pc-windows-msvc"},
	{"windows", "arm64", "aarch64-pc-windows-msvc"},
}

// FileName is the binary's name for Tauri's externalBin.
func (t Target) FileName() string {
	name := "statesync-sidecar-" + t.Triple
	if t.GOOS == "windows" {
		name += ".exe"
	}
	return name
}

func main() {
	out := flag.String("out", "dist", "output folder")
	version := flag.String("version", "", "version to stamp (default: the VERSION file)")
	flag.Parse()
	if err := build(*out, *version); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func build(out, version string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if version == "" {
		b, err := os.ReadFile(filepath.Join(root, "VERSION"))
		if err != nil {
			return fmt.Errorf("reading VERSION: %w", err)
		}
		version = strings.TrimSpace(string(b))
	}
	commit := gitCommit(root)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s", version, commit)
	var g errgroup.Group
	g.SetLimit(2)
	for _, t := range Targets {
		g.Go(func() error {
			dst, err := filepath.Abs(filepath.Join(out, t.FileName()))
			if err != nil {
				return err
			}
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", dst, "./cmd/statesync-sidecar")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.GOOS, "GOARCH="+t.GOARCH)
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("building %s: %v\n%s", t.FileName(), err, b)
			}
			fmt.Printf("built %s\n", dst)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return writeChecksums(out)
}

// writeChecksums writes SHA256SUMS in the format of sha256sum, so `sha256sum -c` checks it.
func writeChecksums(out string) error {
	var lines []string
	for _, t := range Targets {
		f, err := os.Open(filepath.Join(out, t.FileName()))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		lines = append(lines, hex.EncodeToString(h.Sum(nil))+"  "+t.FileName())
	}
	sort.Strings(lines)
	return os.WriteFile(filepath.Join(out, "SHA256SUMS"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run dist inside the state-sync module")
	}
	return filepath.Dir(mod), nil
}

// gitCommit is the short commit, with "-dirty" for uncommitted changes; "unknown" outside git.
func gitCommit(root string) string {
	cmd := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12", "--exclude", "*")
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
