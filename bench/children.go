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
}

func buildChildren(root, dir string) (children, error) {
	c := children{
		handshake:  filepath.Join(dir, "handshake"+exeSuffix()),
		floorchild: filepath.Join(dir, "floorchild"+exeSuffix()),
	}
	for _, b := range []struct{ out, pkg string }{
		{c.handshake, "./bench/testdata/handshake"},
		{c.floorchild, "./bench/testdata/floorchild"},
	} {
		build := exec.Command("go", "build", "-o", b.out, b.pkg)
		build.Dir = root
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return c, fmt.Errorf("building the floor program %s: %w", b.pkg, err)
		}
	}
	return c, nil
}
