package main

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// The floor child must speak what the host expects: a getSnapshot per invalidate and an
// apply per channel that the host reads as such, or the floor would measure nothing.
func TestFloorChildRoundsLikeTheSidecar(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bench/testdata/floorchild")
	}
	root := moduleRoot()
	kids, err := buildChildren(root, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3} {
		samples, perRound, err := floorFanout(kids.floorchild, n, payload(2<<10), budget{warmup: 1, rounds: 3, minRounds: 3, maxTime: time.Minute})
		if err != nil {
			t.Fatalf("floor with %d channels: %v", n, err)
		}
		if len(samples) != 3 || perRound != 1 {
			t.Errorf("floor with %d channels: got %d rounds and %.2f getSnapshot per round, want 3 and 1", n, len(samples), perRound)
		}
	}
	f, err := startHost(kids.floorchild, []string{"0"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pour(f, 1, 1000, false, nil, "floor ingest"); err != nil {
		t.Errorf("floor ingest: %v", err)
	}
	if err := f.close(10 * time.Second); err != nil {
		t.Error(err)
	}
	rss, err := handshakeRSS(kids.handshake)
	if err != nil || rss <= 0 {
		t.Errorf("handshake RSS: got %d, %v; want a positive size", rss, err)
	}
}

func TestBurstBound(t *testing.T) {
	// Two providers: one fetched at states 3, 5, 9 (last published 10), one at 4 and 4.
	answers := map[string][]uint64{"c0000": {3, 5, 9}, "c0001": {4, 4}}
	bound, _, repeats := boundOf(answers, 10, 2, true)
	if want := int64((1 + 10 - 3) + (1 + 10 - 4)); bound != want {
		t.Errorf("advancing bound: got %d, want %d", bound, want)
	}
	if repeats != 1 {
		t.Errorf("repeats: got %d, want 1 (c0001 got state 4 twice)", repeats)
	}
	if bound, _, _ := boundOf(map[string][]uint64{"": {7}}, 7, 1, false); bound != 2 {
		t.Errorf("quiet bound with one provider: got %d, want 2", bound)
	}
}

// The cold-start bound parses a flag set of the sidecar's shape: when the sidecar gains or
// loses a flag, or a flag changes kind, the bound must follow, or it measures another
// program's start.
func TestBoundParsesTheSidecarsFlags(t *testing.T) {
	root := moduleRoot()
	definition := regexp.MustCompile(`\bf(?:lags)?\.(String|Int|Bool|BoolP|Duration)\("([a-z-]+)"`)
	flagsIn := func(files ...string) map[string]string {
		got := map[string]string{}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(root, f))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range definition.FindAllStringSubmatch(string(b), -1) {
				got[m[2]] = m[1]
			}
		}
		return got
	}
	sidecar := flagsIn("cmd/statesync-sidecar/main.go", "cmd/statesync-sidecar/store.go")
	bound := flagsIn("bench/testdata/handshake/with_sidecarflags.go")
	if len(sidecar) < 20 {
		t.Fatalf("found %d flag definitions in the sidecar's command; the pattern no longer matches its code", len(sidecar))
	}
	if !maps.Equal(sidecar, bound) {
		t.Errorf("bench/testdata/handshake/with_sidecarflags.go defines %v\nthe sidecar defines %v", bound, sidecar)
	}
}
