package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// children are the trivial programs each floor runs, built once per run from
// bench/testdata (go's ./... patterns skip testdata, so they never ship or get tested as
// part of the module): handshake is the cold-start floor, floorchild the pipe floor of
// fan-out and ingest. Neither links anything of state-sync.
type children struct {
	handshake  string
	floorchild string
	variants   []variant
}

// variant is the handshake program built with one tag of bench/testdata/handshake, which
// adds imports: its cold start minus the handshake program's is what they cost.
type variant struct {
	Tag     string `json:"tag"`
	Imports string `json:"imports"`
	path    string
}

// importVariants are the cold-start variants, in the order they are printed.
var importVariants = []variant{
	{Tag: "with_fmt", Imports: "fmt"},
	{Tag: "with_json", Imports: "encoding/json"},
	{Tag: "with_slog", Imports: "log/slog"},
	{Tag: "with_signal", Imports: "os/signal"},
	{Tag: "with_cryptorand", Imports: "crypto/rand (store's epochs)"},
	{Tag: "with_pflag", Imports: "github.com/spf13/pflag"},
	{Tag: "with_jsonrpc2", Imports: "github.com/sourcegraph/jsonrpc2"},
	{Tag: "with_all", Imports: "every package the sidecar imports (rpc, store, pflag, slog, signal, …)"},
	// Not imports but the sidecar's first steps, which no sidecar can skip: together they
	// are the least a program that keeps pflag and exits cleanly on a signal does here.
	{Tag: "with_all,with_sidecarflags", Imports: "… and a flag set of the sidecar's shape parsed (pflag, 22 flags)"},
	{Tag: boundTag, Imports: "… and SIGTERM, SIGINT, SIGHUP caught, SIGPIPE ignored (on a goroutine, as the sidecar does)"},
}

// boundTag is the last variant: the least any sidecar does before its answer (every
// import, its flags parsed with pflag, the goodbye signals caught), which the summary
// prints under the cold-start target.
const boundTag = "with_all,with_sidecarflags,with_goodbyes"

// buildChildren builds the floor programs and the given import variants into dir.
func buildChildren(root, dir string, variants []variant) (children, error) {
	c := children{
		handshake:  filepath.Join(dir, "handshake"+exeSuffix()),
		floorchild: filepath.Join(dir, "floorchild"+exeSuffix()),
	}
	type job struct{ out, pkg, tags string }
	jobs := []job{{c.handshake, "./bench/testdata/handshake", ""}, {c.floorchild, "./bench/testdata/floorchild", ""}}
	for _, v := range variants {
		v.path = filepath.Join(dir, "handshake-"+v.Tag+exeSuffix())
		c.variants = append(c.variants, v)
		jobs = append(jobs, job{v.path, "./bench/testdata/handshake", v.Tag})
	}
	for _, b := range jobs {
		if err := goBuild(root, b.out, b.pkg, b.tags); err != nil {
			return c, fmt.Errorf("building the floor program %s: %w", b.pkg, err)
		}
	}
	return c, nil
}

// goBuild builds pkg as the release does (internal/dist: CGO_ENABLED=0, -trimpath, -s -w),
// so that the benchmark measures the binary users get, and every floor program alike: a
// plain go build on a machine with a C toolchain links the sidecar dynamically (spf13/pflag
// imports net), and the dynamic loader alone costs milliseconds of every cold start.
func goBuild(root, out, pkg, tags string) error {
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-tags="+tags, "-o", out, pkg)
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return build.Run()
}
