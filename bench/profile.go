package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/spf13/pflag"

	"github.com/state-sync/state-sync/rpc"
	"github.com/state-sync/state-sync/store"
)

// With --profile DIR the harness measures this binary re-executed in sidecar mode instead
// of statesync-sidecar: the same rpc.Server with the flags' defaults (and --store-file),
// writing a CPU profile and an allocation profile of each spawned process into DIR:
//
//	go run ./bench --only fanout --fanout-channels 100 --fanout-kib 1 --profile /tmp/prof
//	go tool pprof -top $(ls -S /tmp/prof/cpu-*.pprof | head -1)
const sidecarMode = "__sidecar"

// runSidecar is the profiled sidecar's main.
func runSidecar(args []string) int {
	flags := pflag.NewFlagSet("bench-sidecar", pflag.ContinueOnError)
	storeFile := flags.String("store-file", "", "")
	dir := flags.String("profile-dir", "", "")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	st := store.NewMemory(8 << 20)
	if *storeFile != "" {
		var err error
		if st, err = store.OpenFile(*storeFile, 8<<20); err != nil {
			fmt.Fprintln(os.Stderr, "bench sidecar:", err)
			return 1
		}
	}
	defer st.Close()
	if *dir != "" {
		f, err := os.Create(filepath.Join(*dir, fmt.Sprintf("cpu-%d.pprof", os.Getpid())))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench sidecar:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench sidecar:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
			if h, err := os.Create(filepath.Join(*dir, fmt.Sprintf("allocs-%d.pprof", os.Getpid()))); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(h, 0)
				_ = h.Close()
			}
		}()
	}
	if err := rpc.NewServer(rpc.Config{Store: st}).Serve(context.Background(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench sidecar:", err)
		return 1
	}
	return 0
}
