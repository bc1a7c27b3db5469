// Command statesync-sidecar runs state-sync's engines for a host application (Tauri,
// Electron, any process that can spawn it) and speaks JSON-RPC 2.0 on stdin/stdout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/state-sync/state-sync/rpc"
)

// Set at build time by task dist: -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

const usageHead = `statesync-sidecar keeps state in sync between the windows of a desktop app.

The host spawns it and speaks JSON-RPC 2.0 on its stdin/stdout (see docs/protocol.md).
stdout carries protocol only; logs go to stderr. It exits 0 when stdin closes, on a
shutdown request, or on SIGTERM, SIGINT or SIGHUP.

Usage:
  statesync-sidecar [flags]

Examples:
  statesync-sidecar                               # NDJSON on stdio, embedded memory store
  statesync-sidecar --store-file app-state.json   # the store survives restarts
  statesync-sidecar --nats-url nats://127.0.0.1:4222  # one store shared by many sidecars
  statesync-sidecar --framing lsp                 # Content-Length framing (vscode-jsonrpc)
  statesync-sidecar --trace --log-level debug     # every message and decision on stderr
  echo '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1"}}' | statesync-sidecar

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: the protocol goes to stdout, everything else to
// stderr. It returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Signals first, on their own goroutine: os/signal starts two threads to deliver them,
	// which run while the flags, logger and store are set up instead of before them (about
	// 0.8 ms of every cold start otherwise), and the sidecar catches a goodbye sooner.
	signals, signalsReady, stopSignals := catchGoodbyes()
	defer stopSignals()
	flags := pflag.NewFlagSet("statesync-sidecar", pflag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.SortFlags = false
	var (
		framing       = flags.String("framing", "ndjson", "message framing: ndjson (one message per line) or lsp (Content-Length headers)")
		defaultSource = flags.String("default-source", "store", "source of channels opened without one: store or host")
		storeFile     = flags.String("store-file", "", "persist the embedded store in this file (created 0600); default: in memory")
		logLevel      = flags.String("log-level", "off", "log level on stderr: off, error, warn, info or debug")
		logFormat     = flags.String("log-format", "text", "log format: text or json")
		trace         = flags.Bool("trace", false, "print every message in (<-) and out (->) on stderr, data included")
		callTimeout   = flags.Duration("call-timeout", 10*time.Second, "bound on each getSnapshot and apply call to the host")
		maxMessage    = flags.Int("max-message-bytes", 16<<20, "largest message accepted; larger ones are answered -32600 and skipped")
		maxChannels   = flags.Int("max-channels", 10000, "open channels at once")
		maxInFlight   = flags.Int("max-in-flight", 4096, "requests that wait on the host (open, refresh, shutdown) handled at once; more are answered -32003")
		maxStoreBytes = flags.Int("max-store-bytes", 8<<20, "largest data of one store topic")
		deltaHistory  = flags.Int("delta-history-bytes", rpc.DefaultDeltaHistoryBytes, "data of recent revisions kept per topic to send deltas from, and again for computed patches (0: deltas off, every apply carries full data)")
		parentPID     = flags.Int("parent-pid", 0, "exit when this process is gone (0: off)")
		showVersion   = flags.Bool("version", false, "print the version and exit")
		help          = flags.BoolP("help", "h", false, "print this help and exit")
	)
	natsFlags := addNATSFlags(flags)
	flags.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		// pflag with ContinueOnError prints nothing: say what was wrong and where the
		// flags are listed, on stderr (stdout is the protocol).
		fmt.Fprintf(stderr, "statesync-sidecar: %v\n", err)
		if strings.Contains(err.Error(), "missing unit in duration") {
			fmt.Fprintln(stderr, "durations need a unit: 500ms, 10s, 1m")
		}
		fmt.Fprintln(stderr, "Run 'statesync-sidecar --help' for the flags.")
		return 2
	}
	if *help {
		flags.SetOutput(stdout)
		fmt.Fprint(stdout, usageHead)
		flags.PrintDefaults()
		return 0
	}
	if *showVersion {
		fmt.Fprintf(stdout, "statesync-sidecar %s\n", versionString())
		return 0
	}
	usageError := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "statesync-sidecar: "+format+"\n\n", a...)
		flags.Usage()
		return 2
	}
	if flags.NArg() > 0 {
		return usageError("unexpected argument %q: the sidecar takes flags only", flags.Arg(0))
	}
	frm, err := rpc.ParseFraming(*framing)
	if err != nil {
		return usageError("--framing: %v", err)
	}
	src, err := rpc.ParseSource(*defaultSource)
	if err != nil || src == rpc.SourceChannel {
		return usageError("--default-source: want store or host, got %q", *defaultSource)
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return usageError("%v", err)
	}
	switch {
	case *callTimeout <= 0:
		return usageError("--call-timeout: want a positive duration such as 10s")
	case *maxMessage < 1024:
		return usageError("--max-message-bytes: want at least 1024")
	case *maxInFlight < 1:
		return usageError("--max-in-flight: want at least 1")
	case *maxChannels < 1:
		return usageError("--max-channels: want at least 1")
	case *maxStoreBytes < 1:
		return usageError("--max-store-bytes: want at least 1")
	case *deltaHistory < 0:
		return usageError("--delta-history-bytes: want 0 (deltas off) or a number of bytes")
	case *parentPID < 0:
		return usageError("--parent-pid: want a process id")
	}
	if err := natsFlags.check(*storeFile); err != nil {
		return usageError("%v", err)
	}

	store, err := openStore(context.Background(), *storeFile, *maxStoreBytes, natsFlags, logger)
	if err != nil {
		fmt.Fprintf(stderr, "statesync-sidecar: %v\n", err)
		return 1
	}
	defer store.Close()

	cfg := rpc.Config{
		Framing:         frm,
		MaxMessageBytes: *maxMessage,
		MaxChannels:     *maxChannels,
		MaxInFlight:     *maxInFlight,
		CallTimeout:     *callTimeout,
		DefaultSource:   src,
		Store:           store,
		Logger:          logger,
		Version:         versionString(),
	}
	cfg.DeltaHistoryBytes = *deltaHistory
	if *deltaHistory == 0 {
		cfg.DeltaHistoryBytes = -1 // Config's 0 is the default
	}
	if *trace {
		cfg.Trace = stderr
	}

	<-signalsReady // SIGPIPE is ignored before anything is written to stdout
	ctx := signals
	if *parentPID > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go watchParent(ctx, *parentPID, cancel, logger)
	}
	logger.Info("started", "version", versionString(), "framing", frm, "pid", os.Getpid())
	served := make(chan error, 1)
	go func() { served <- rpc.NewServer(cfg).Serve(ctx, stdin, stdout) }()
	err = nil
	select {
	case err = <-served:
	case <-ctx.Done():
		// A signal or the parent watchdog: stop within stopGrace even when engines cannot,
		// because their writes to stdout block on a host that no longer reads it.
		select {
		case err = <-served:
		case <-time.After(stopGrace):
			logger.Warn("engines did not stop in time: writes to stdout are blocked (the host is not reading); exiting anyway", "grace", stopGrace)
		}
	}
	switch {
	case errors.Is(err, syscall.EPIPE):
		// The host closed its end of our stdout: it is gone, as on stdin EOF (a host
		// killed mid-stream breaks both; whichever we notice first, it is a goodbye).
		logger.Info("host stopped reading", "err", err)
	case err != nil:
		// Whatever the log level: the host sees why its sidecar stopped (an LSP framing
		// error, an output that broke) on stderr.
		logger.Error("serve", "err", err)
		fmt.Fprintf(stderr, "statesync-sidecar: %v\n", err)
		return 1
	}
	return 0
}

// catchGoodbyes installs the signal handling on a goroutine of its own: ctx ends on
// SIGTERM, SIGINT or SIGHUP; ready is closed once SIGPIPE is ignored and the three are
// caught; stop undoes it.
func catchGoodbyes() (ctx context.Context, ready <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	caught := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() {
		// A host that dies mid-write closes our stdout: the write must fail with EPIPE (and
		// the sidecar exit 0 on the stdin EOF that follows), not kill the process with
		// SIGPIPE, which Go delivers for writes to fds 1 and 2 unless the signal is ignored.
		signal.Ignore(syscall.SIGPIPE)
		// SIGHUP is a goodbye too: its default action kills the process with no clean stop,
		// and a terminal closing under a sidecar driven by hand sends it.
		signal.Notify(caught, syscall.SIGTERM, os.Interrupt, syscall.SIGHUP)
		close(done)
		select {
		case <-caught:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, done, func() {
		cancel()
		<-done
		signal.Stop(caught)
	}
}

// stopGrace bounds the stop after a signal or the parent's death, within the 200 ms in
// which the sidecar promises to exit.
const stopGrace = 80 * time.Millisecond

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(level) {
	case "off":
		return slog.New(slog.DiscardHandler), nil
	case "error":
		lvl = slog.LevelError
	case "warn":
		lvl = slog.LevelWarn
	case "info":
		lvl = slog.LevelInfo
	case "debug":
		lvl = slog.LevelDebug
	default:
		return nil, fmt.Errorf("--log-level: want off, error, warn, info or debug, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
}

func versionString() string {
	v := version
	c := commit
	if c == "" {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					c = s.Value[:12]
				}
			}
		}
	}
	if c != "" {
		v += " (" + c + ")"
	}
	return v
}

// watchParent cancels when the process pid is gone: a host killed with SIGKILL cannot
// close our stdin on purpose, though its death usually does.
func watchParent(ctx context.Context, pid int, cancel context.CancelFunc, log *slog.Logger) {
	wasParent := os.Getppid() == pid
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			// A dead parent hands us to another process at once, before its pid could be
			// reused; for any other pid, ask the OS.
			if (wasParent && os.Getppid() != pid) || !processAlive(pid) {
				log.Info("parent process is gone", "pid", pid)
				cancel()
				return
			}
		}
	}
}
