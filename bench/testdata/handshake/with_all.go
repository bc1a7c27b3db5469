//go:build with_all

package main

// With the tag, the program links and initialises every package statesync-sidecar imports: what is left between the two is the sidecar's main (cold-start variants).
import (
	_ "context"
	_ "errors"
	_ "fmt"
	_ "io"
	_ "log/slog"
	_ "os/signal"
	_ "runtime/debug"
	_ "strings"
	_ "syscall"
	_ "time"

	_ "github.com/spf13/pflag"

	_ "github.com/state-sync/state-sync/rpc"
	_ "github.com/state-sync/state-sync/store"
)
