// Command bench is state-sync's performance harness: it spawns the real statesync-sidecar
// over pipes, drives it as a host does, and prints the numbers of DESIGN §7 next to the
// floor (the same bytes through a trivial child process) measured in the same run.
//
//	go run ./bench               # full run, about 3 minutes; docs/performance.md quotes one
//	go run ./bench --quick       # smoke run for task test: a few rounds, no time asserted
//
// It exits 0 unless something is functionally broken (a channel never converges, the
// sidecar dies, an answer is wrong); slow numbers are reported, never failed.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Every wait is bounded: a setup step (spawn, open every channel) by setupTimeout, one
// measured round by roundTimeout, an ingest cell by ingestTimeout. Hitting any is a
// functional failure.
const (
	setupTimeout  = 30 * time.Second
	roundTimeout  = 20 * time.Second
	ingestTimeout = 60 * time.Second // all of an ingest cell's events read
)

type config struct {
	quick    bool
	jsonPath string
	bin      string
	only     map[string]bool
	channels []int // fan-out channel counts; nil: the plan's
	sizesKiB []int // fan-out snapshot sizes; nil: the plan's
	profile  string
	// deltaCells: the cells of the deltas section to run (store, host, noapply); nil:
	// the plan's.
	deltaCells map[string]bool
	kids       children // the floor programs, built per run
}

// report is everything a run measured; written as JSON.
type report struct {
	Mode        string          `json:"mode"`
	Command     string          `json:"command"`
	StartedAt   time.Time       `json:"startedAt"`
	DurationSec float64         `json:"durationSec"`
	Go          string          `json:"go"`
	OS          string          `json:"os"`
	Arch        string          `json:"arch"`
	CPUs        int             `json:"cpus"`
	CPUModel    string          `json:"cpuModel,omitempty"`
	Commit      string          `json:"commit,omitempty"`
	LoadAvg     string          `json:"loadAvg"` // at the start: other work on the machine
	Binary      string          `json:"binary"`
	FanOut      []fanoutResult  `json:"fanOut,omitempty"`
	Bursts      []burstResult   `json:"bursts,omitempty"`
	Ingest      []ingestResult  `json:"ingest,omitempty"`
	Startup     *startupResult  `json:"startup,omitempty"`
	Store       []storeResult   `json:"store,omitempty"`
	Deltas      *deltasReport   `json:"deltas,omitempty"`
	Summary     []targetOutcome `json:"summary,omitempty"`
	Failures    []string        `json:"failures,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == sidecarMode {
		os.Exit(runSidecar(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout))
}

func run(args []string, out io.Writer) int {
	flags := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	var cfg config
	var only string
	var deltaCells []string
	flags.BoolVar(&cfg.quick, "quick", false, "smoke run: few rounds, small budgets (task test runs this)")
	flags.StringVar(&cfg.jsonPath, "json", "", "write the results as JSON here (default: bench/results/<mode>-<time>.json)")
	flags.StringVar(&cfg.bin, "bin", "", "the statesync-sidecar binary to measure (default: build ./cmd/statesync-sidecar into a temp dir)")
	flags.StringVar(&only, "only", "", "comma-separated scenarios to run: fanout,burst,ingest,startup,store,deltas (default: all)")
	flags.IntSliceVar(&cfg.channels, "fanout-channels", nil, "fan-out channel counts to run (default 1,10,100,1000)")
	flags.IntSliceVar(&cfg.sizesKiB, "fanout-kib", nil, "fan-out snapshot sizes in KiB (default 1,256)")
	flags.StringSliceVar(&deltaCells, "deltas-cells", nil, "cells of the deltas scenario to run: store,freezedata,host,noapply (default: all, noapply not with --quick)")
	flags.StringVar(&cfg.profile, "profile", "", "measure this binary as an in-process sidecar that writes CPU and allocation profiles into this folder (see profile.go)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if only != "" {
		cfg.only = map[string]bool{}
		for s := range strings.SplitSeq(only, ",") {
			cfg.only[strings.TrimSpace(s)] = true
		}
	}
	if deltaCells != nil {
		cfg.deltaCells = map[string]bool{}
		for _, c := range deltaCells {
			cfg.deltaCells[strings.TrimSpace(c)] = true
		}
	}
	root := moduleRoot()
	if cfg.profile != "" {
		if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		abs, _ := filepath.Abs(cfg.profile)
		sidecarArgs = []string{sidecarMode, "--profile-dir", abs}
		cfg.bin = self
	}
	dir, err := os.MkdirTemp("", "statesync-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	var variants []variant
	if cfg.only == nil || cfg.only["startup"] {
		for _, v := range importVariants {
			// Quick keeps three (the last is the summary's bound), so that the code path
			// runs without ten builds.
			if !cfg.quick || v.Tag == "with_pflag" || v.Tag == "with_all" || v.Tag == boundTag {
				variants = append(variants, v)
			}
		}
	}
	if cfg.kids, err = buildChildren(root, dir, variants); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if cfg.bin == "" {
		cfg.bin = filepath.Join(dir, "statesync-sidecar"+exeSuffix())
		if err := goBuild(root, cfg.bin, "./cmd/statesync-sidecar", ""); err != nil {
			fmt.Fprintln(os.Stderr, "bench: building the sidecar:", err)
			return 1
		}
	}
	rep := measure(cfg, out)
	path := cfg.jsonPath
	if path == "" {
		path = filepath.Join(root, "bench", "results", rep.Mode+"-"+rep.StartedAt.Format("20060102-150405")+".json")
	}
	if err := writeJSON(path, rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench: writing results:", err)
		return 1
	}
	fmt.Fprintf(out, "\nresults: %s\n", path)
	if len(rep.Failures) > 0 {
		fmt.Fprintf(out, "\nFUNCTIONAL FAILURES (%d):\n", len(rep.Failures))
		for _, f := range rep.Failures {
			fmt.Fprintln(out, "  -", f)
		}
		return 1
	}
	return 0
}

// plan is the size of a run.
type plan struct {
	fanCells     []cell
	fan          budget
	fanBig       budget // cells whose rounds move more than 8 MiB
	floor        budget
	floorBig     budget
	burstEvents  int
	burstChans   int
	ingestEvents int
	staleChans   []int // stale ingest: DESIGN §7 wants it flat over these
	risingChans  int   // ingest with increasing revisions
	spawns       int
	traceSpawns  int
	memChannels  int
	store        budget
	storeChans   int
	// deltas.go: the order of its cells (false: deltas off), the store cell's rounds
	// (each moves 100 MiB with deltas off) and the host cell's changes.
	deltaOrder       []bool
	deltaStore       budget
	deltaHostChanges budget
	deltaDiag        bool // also the store cell with windows that do not apply
}

// cell is one fan-out measurement: channels × snapshot size.
type cell struct{ channels, size int }

func planFor(quick bool) plan {
	const kib = 1 << 10
	p := plan{
		burstEvents: 10000, burstChans: 100,
		staleChans:  []int{10, 100, 1000},
		risingChans: 100,
		memChannels: 1000,
		storeChans:  100,
	}
	if quick {
		p.fanCells = []cell{{1, kib}, {100, kib}, {1000, kib}, {1, 64 * kib}, {100, 256 * kib}}
		p.fan = budget{warmup: 2, rounds: 20, minRounds: 3, maxTime: 300 * time.Millisecond}
		p.fanBig = budget{warmup: 1, rounds: 5, minRounds: 1, maxTime: 300 * time.Millisecond}
		p.floor = budget{warmup: 2, rounds: 20, minRounds: 3, maxTime: 200 * time.Millisecond}
		p.floorBig = p.fanBig
		p.ingestEvents = 20000
		p.spawns = 5
		p.traceSpawns = 2
		p.store = budget{warmup: 2, rounds: 20, minRounds: 3, maxTime: 300 * time.Millisecond}
		p.deltaOrder = []bool{false, true}
		p.deltaStore = budget{warmup: 1, rounds: 3, minRounds: 2, maxTime: 300 * time.Millisecond}
		p.deltaHostChanges = budget{warmup: 1, rounds: 5, minRounds: 2, maxTime: 300 * time.Millisecond}
		return p
	}
	p.fanCells = []cell{
		{1, kib}, {10, kib}, {100, kib}, {1000, kib},
		{1, 64 * kib}, {100, 64 * kib},
		{1, 256 * kib}, {100, 256 * kib}, {1000, 256 * kib},
	}
	p.fan = budget{warmup: 10, rounds: 200, minRounds: 200, maxTime: 10 * time.Second}
	p.floor = budget{warmup: 10, rounds: 200, minRounds: 200, maxTime: 10 * time.Second}
	// A 1,000 × 256 KiB round moves 256 MiB (sidecar and floor alike): these caps bound
	// such cells on a slow or loaded machine.
	p.fanBig = budget{warmup: 2, rounds: 200, minRounds: 10, maxTime: 20 * time.Second}
	p.floorBig = budget{warmup: 2, rounds: 200, minRounds: 10, maxTime: 15 * time.Second}
	p.ingestEvents = 200000
	p.spawns = 30
	p.traceSpawns = 10
	p.store = budget{warmup: 10, rounds: 200, minRounds: 200, maxTime: 10 * time.Second}
	p.deltaOrder = []bool{false, true, false, true}
	p.deltaStore = budget{warmup: 3, rounds: 100, minRounds: 10, maxTime: 6 * time.Second}
	p.deltaHostChanges = budget{warmup: 3, rounds: 100, minRounds: 20, maxTime: 6 * time.Second}
	p.deltaDiag = true
	return p
}

func measure(cfg config, out io.Writer) *report {
	mode := "full"
	if cfg.quick {
		mode = "quick"
	}
	rep := &report{
		Mode: mode, Command: "go run ./bench " + strings.Join(os.Args[1:], " "), StartedAt: time.Now(),
		Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
		CPUModel: cpuModel(), Commit: commit(), Binary: cfg.bin, LoadAvg: loadAvg(),
	}
	rep.Command = strings.TrimSpace(rep.Command)
	p := planFor(cfg.quick)
	if cfg.channels != nil || cfg.sizesKiB != nil {
		chans, sizes := cfg.channels, cfg.sizesKiB
		if chans == nil {
			chans = []int{1, 10, 100, 1000}
		}
		if sizes == nil {
			sizes = []int{1, 64, 256}
		}
		p.fanCells = nil
		for _, k := range sizes {
			for _, n := range chans {
				p.fanCells = append(p.fanCells, cell{n, k << 10})
			}
		}
	}
	want := func(name string) bool { return cfg.only == nil || cfg.only[name] }
	fail := func(err error) {
		rep.Failures = append(rep.Failures, err.Error())
		fmt.Fprintln(out, "  FAILED:", err)
	}
	fmt.Fprintf(out, "statesync-sidecar benchmark (%s) — %s %s/%s, %d CPUs, %s; load average %s at start\n", mode, rep.Go, rep.OS, rep.Arch, rep.CPUs, rep.CPUModel, rep.LoadAvg)
	if st, err := os.Stat(cfg.bin); err == nil {
		fmt.Fprintf(out, "binary: %s (%s)", cfg.bin, fmtBytes(st.Size()))
	}
	if rep.Commit != "" {
		fmt.Fprintf(out, ", commit %s", rep.Commit)
	}
	fmt.Fprintln(out)

	if want("fanout") {
		fmt.Fprintln(out, "\nFan-out: invalidate → every channel applied (source host; the host answers getSnapshot at once)")
		fmt.Fprintln(out, "  floor = the same host, bytes and round trips with the sidecar replaced by a trivial child (bench/testdata/floorchild):")
		fmt.Fprintln(out, "  invalidate in, getSnapshot out, snapshot in, one apply per channel out, each acked")
		tw := newTable(out, "channels", "snapshot", "rounds", "p50", "p99", "floor p50", "floor p99", "×floor p50", "×floor p99", "getSnapshot/round", "peak RSS")
		for _, c := range p.fanCells {
			b, fb := p.fan, p.floor
			if c.channels*c.size > 8<<20 {
				b, fb = p.fanBig, p.floorBig
			}
			progress("fan-out %d × %s", c.channels, fmtBytes(int64(c.size)))
			r, err := fanout(cfg.bin, cfg.kids.floorchild, c.channels, c.size, b, fb)
			if err != nil {
				fail(err)
				continue
			}
			rep.FanOut = append(rep.FanOut, r)
			tw.row(fmt.Sprint(c.channels), fmtBytes(int64(c.size)), fmt.Sprint(r.Rounds), fmtMs(r.Latency.P50), fmtMs(r.Latency.P99),
				fmtMs(r.Floor.P50), fmtMs(r.Floor.P99), fmt.Sprintf("%.1f", r.RatioP50), fmt.Sprintf("%.1f", r.RatioP99),
				fmt.Sprintf("%.2f (floor %.2f)", r.GetSnapshots, r.FloorGetSnapshots), fmtBytes(r.PeakRSSBytes))
			warnErrors(out, "fan-out", r.ErrorNotifs, r.FirstErrors)
		}
		tw.flush()
	}

	if want("burst") {
		fmt.Fprintf(out, "\nBurst: %d invalidations on one topic, %d channels, 1 KiB snapshot\n", p.burstEvents, p.burstChans)
		tw := newTable(out, "case", "source", "host states published", "getSnapshot", "bound", "fetches that saw no newer state", "applies/channel min/mean/max", "every event read", "converged")
		cases := []struct {
			name, source string
			advancing    bool
		}{
			{"quiet, sharing on", "host", false},
			{"quiet, sharing off", "channel", false},
			{"host advancing, sharing on", "host", true},
			{"host advancing, sharing off", "channel", true},
		}
		for _, c := range cases {
			progress("burst, %s", c.name)
			r, err := burst(cfg.bin, c.name, c.source, p.burstChans, p.burstEvents, c.advancing)
			if err != nil {
				fail(err)
				continue
			}
			rep.Bursts = append(rep.Bursts, r)
			tw.row(c.name, c.source, fmt.Sprint(r.Publications), fmt.Sprint(r.GetSnapshots), fmt.Sprint(r.Bound), fmt.Sprint(r.Repeats),
				fmt.Sprintf("%d / %.1f / %d", r.AppliesMin, r.AppliesMean, r.AppliesMax), fmtMs(r.ReadMs), fmtMs(r.ConvergeMs))
			warnErrors(out, "burst", r.ErrorNotifs, r.FirstErrors)
		}
		tw.flush()
		fmt.Fprintf(out, "  quiet: the host holds the final state before the first event (DESIGN §4's burst); bound 2 per provider\n")
		fmt.Fprintf(out, "  advancing: the host publishes a state every %d events as it writes them; bound Σ over providers of\n", burstPublishEvery)
		fmt.Fprintln(out, "  1 + states published after that provider's first answer (docs/performance.md, \"What a burst may cost\")")
		fmt.Fprintln(out, "  converged: every channel applied the final revision AND a request written after the last event was answered")
	}

	if want("ingest") {
		fmt.Fprintf(out, "\nIngest: %d invalidate notifications (increasing revisions above 100 channels: %d × 100 / channels) written as fast as the pipe takes them (source host)\n", p.ingestEvents, p.ingestEvents)
		fmt.Fprintln(out, "  floor = the same lines into the trivial child, which reads them and answers the closing request")
		tw := newTable(out, "case", "events", "absorbed", "time", "floor", "×floor", "getSnapshot", "applies")
		type ingestCase struct {
			stale    bool
			channels int
		}
		var cases []ingestCase
		for _, n := range p.staleChans {
			cases = append(cases, ingestCase{true, n})
		}
		cases = append(cases, ingestCase{false, p.risingChans})
		for _, c := range cases {
			name := ingestName(c.stale, c.channels)
			progress("ingest, %s", name)
			// A stale event is absorbed once per topic (engine.Fanout), whatever the
			// channels, so every stale cell pours the same events: with fewer, the
			// 1,000-channel cell's fixed costs (the closing round trip, a GC over 1,000
			// workers' stacks) weighed ten times more in its rate, and "flat" compared
			// unlike cells. Increasing revisions fan out per event: above 100 channels
			// they keep the work per cell (events × channels) of 100, so that a cell on
			// a loaded machine stays within its time bound.
			count := p.ingestEvents
			if !c.stale && c.channels > 100 {
				count = p.ingestEvents * 100 / c.channels
			}
			r, err := ingest(cfg.bin, cfg.kids.floorchild, name, c.channels, count, p.ingestEvents, c.stale)
			if err != nil {
				fail(err)
				continue
			}
			rep.Ingest = append(rep.Ingest, r)
			floor, ratio := "-", "-"
			if r.FloorPerSecond > 0 {
				floor, ratio = fmtRate(r.FloorPerSecond), fmt.Sprintf("%.1f", r.Ratio)
			}
			tw.row(name, fmt.Sprint(r.Events), fmtRate(r.PerSecond), fmtMs(r.Seconds*1000), floor, ratio, fmt.Sprint(r.GetSnapshots), fmt.Sprint(r.Applies))
			warnErrors(out, "ingest", r.ErrorNotifs, r.FirstErrors)
		}
		tw.flush()
	}

	if want("startup") {
		fmt.Fprintln(out, "\nCold start, memory, size (floor: bench/testdata/handshake, a Go program that reads one line and answers one)")
		st := &startupResult{Channels: p.memChannels}
		if fi, err := os.Stat(cfg.bin); err == nil {
			st.BinaryBytes = fi.Size()
		}
		if fi, err := os.Stat(cfg.kids.handshake); err == nil {
			st.FloorBinaryBytes = fi.Size()
		}
		progress("cold start, memory")
		// Round robin, one spawn of each program per turn, so that a change in the
		// machine's load hits all alike.
		progs := []string{cfg.bin, cfg.kids.handshake}
		args := [][]string{sidecarArgs, nil}
		for _, v := range cfg.kids.variants {
			progs, args = append(progs, v.path), append(args, nil)
		}
		samples := make([][]time.Duration, len(progs))
	spawning:
		for range p.spawns {
			for i, prog := range progs {
				s, err := coldStart(prog, args[i], 1)
				if err != nil {
					fail(err)
					break spawning
				}
				samples[i] = append(samples[i], s...)
			}
		}
		st.ColdStart, st.ColdStartFloor = summarize(samples[0]), summarize(samples[1])
		if st.ColdStartFloor.P50 > 0 {
			st.ColdStartRatio = st.ColdStart.P50 / st.ColdStartFloor.P50
		}
		for i, v := range cfg.kids.variants {
			r := variantResult{Tag: v.Tag, Imports: v.Imports, ColdStart: summarize(samples[i+2])}
			if fi, err := os.Stat(v.path); err == nil {
				r.BinaryBytes = fi.Size()
			}
			if st.ColdStartFloor.P50 > 0 {
				r.Ratio = r.ColdStart.P50 / st.ColdStartFloor.P50
			}
			st.Variants = append(st.Variants, r)
		}
		var err error
		if st.Inits, st.InitsDoneMs, st.InitsClockMs, err = initTrace(cfg.bin, sidecarArgs, p.traceSpawns); err != nil {
			fail(err)
		}
		if _, st.FloorInitsDoneMs, _, err = initTrace(cfg.kids.handshake, nil, p.traceSpawns); err != nil {
			fail(err)
		}
		idle, open, peak, err := memory(cfg.bin, p.memChannels)
		if err != nil {
			fail(err)
		}
		st.RSSIdle, st.RSSChannels, st.PeakChannels = idle, open, peak
		if st.RSSFloor, err = handshakeRSS(cfg.kids.handshake); err != nil {
			fail(err)
		}
		rep.Startup = st
		tw := newTable(out, "measure", "value", "floor", "×floor", "note")
		tw.row(fmt.Sprintf("cold start: spawn → initialize answered (median of %d)", st.ColdStart.N), fmtMs(st.ColdStart.P50), fmtMs(st.ColdStartFloor.P50),
			fmt.Sprintf("%.2f", st.ColdStartRatio), fmt.Sprintf("p99 %s, floor p99 %s", fmtMs(st.ColdStart.P99), fmtMs(st.ColdStartFloor.P99)))
		tw.row("package inits done (median, ms after the runtime started)", fmtMs(st.InitsDoneMs), fmtMs(st.FloorInitsDoneMs), "-",
			fmt.Sprintf("GODEBUG=inittrace=1, %d spawns; sum of init clock %s", p.traceSpawns, fmtMs(st.InitsClockMs)))
		tw.row("RSS idle (after initialize)", fmtBytes(st.RSSIdle), fmtBytes(st.RSSFloor), fmt.Sprintf("%.2f", ratioOf(st.RSSIdle, st.RSSFloor)), "VmRSS; floor: the handshake program after its answer")
		tw.row(fmt.Sprintf("RSS with %d open channels", st.Channels), fmtBytes(st.RSSChannels), fmtBytes(st.RSSFloor), fmt.Sprintf("%.2f", ratioOf(st.RSSChannels, st.RSSFloor)), "VmRSS; peak (VmHWM) "+fmtBytes(st.PeakChannels))
		tw.row("binary size", fmtBytes(st.BinaryBytes), fmtBytes(st.FloorBinaryBytes), fmt.Sprintf("%.2f", ratioOf(st.BinaryBytes, st.FloorBinaryBytes)), "built as the release is: CGO_ENABLED=0, -trimpath, -s -w (unless --bin)")
		tw.flush()
		if len(st.Variants) > 0 {
			fmt.Fprintf(out, "  what each import and first step costs: the handshake program built with one more import (blank: its init and what that links), then with the sidecar's first steps, median of %d:\n", p.spawns)
			vt := newTable(out, "imports", "cold start", "×handshake", "binary")
			vt.row("nothing (the handshake program)", fmtMs(st.ColdStartFloor.P50), "1.00", fmtBytes(st.FloorBinaryBytes))
			for _, v := range st.Variants {
				vt.row(v.Imports, fmtMs(v.ColdStart.P50), fmt.Sprintf("%.2f", v.Ratio), fmtBytes(v.BinaryBytes))
			}
			vt.row("statesync-sidecar", fmtMs(st.ColdStart.P50), fmt.Sprintf("%.2f", st.ColdStartRatio), fmtBytes(st.BinaryBytes))
			vt.flush()
		}
		if len(st.Inits) > 0 {
			fmt.Fprintln(out, "  what each package's init costs in the sidecar (median clock per spawn, most expensive first):")
			it := newTable(out, "package", "clock", "bytes", "allocs")
			for _, c := range st.Inits[:min(10, len(st.Inits))] {
				it.row(c.Package, fmtMs(c.ClockMs), fmtBytes(c.Bytes), fmt.Sprint(c.Allocs))
			}
			it.flush()
		}
	}

	if want("store") {
		fmt.Fprintf(out, "\nEmbedded store: state.set → answered and every channel applied, %d channels (source store), 1 KiB\n", p.storeChans)
		tw := newTable(out, "backend", "rounds", "p50", "p99", "mean")
		for _, backend := range []string{"memory", "file"} {
			progress("store, %s", backend)
			r, err := storeRounds(cfg.bin, backend, p.storeChans, 1<<10, p.store)
			if err != nil {
				fail(err)
				continue
			}
			rep.Store = append(rep.Store, r)
			tw.row(backend, fmt.Sprint(r.Rounds), fmtMs(r.Latency.P50), fmtMs(r.Latency.P99), fmtMs(r.Latency.Mean))
			warnErrors(out, "store", r.ErrorNote, r.FirstErrors)
		}
		tw.flush()
	}

	if want("deltas") {
		rep.Deltas = measureDeltas(cfg, p, out, fail)
	}

	rep.Summary = summary(rep)
	if len(rep.Summary) > 0 {
		fmt.Fprintln(out, "\nDESIGN §7 / issue 14: every figure next to its floor or bound from this run (reported, never asserted)")
		tw := newTable(out, "measure", "value", "floor / peer / bound", "ratio", "target", "")
		for _, t := range rep.Summary {
			verdict := "met"
			switch {
			case t.Context != "":
				verdict = t.Context
			case !t.Met:
				verdict = "MISSED"
			}
			tw.row(t.Measure, t.Value, t.Peer, t.Ratio, t.Target, verdict)
		}
		tw.flush()
	}
	rep.DurationSec = time.Since(rep.StartedAt).Seconds()
	fmt.Fprintf(out, "\ntotal %.1fs\n", rep.DurationSec)
	return rep
}

// progress tells a waiting human what is being measured (stderr, so stdout is the table).
func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "  … "+format+"\n", a...)
}

func warnErrors(out io.Writer, what string, n int64, first []string) {
	if n > 0 {
		fmt.Fprintf(out, "  note: %s: the sidecar sent %d error notifications, first: %s\n", what, n, strings.Join(first, "; "))
	}
}

// targetOutcome is one row of the summary: a DESIGN §7 figure, its floor, peer or bound
// from the same run, their ratio and the target.
type targetOutcome struct {
	Measure string `json:"measure"`
	Value   string `json:"value"`
	Peer    string `json:"peer"`
	Ratio   string `json:"ratio"`
	Target  string `json:"target"`
	Met     bool   `json:"met"`
	// Context, when set, marks a row that is no target but a bound to read one by; it is
	// printed instead of met or MISSED.
	Context string `json:"context,omitempty"`
}

// flatEnough is this harness's reading of DESIGN §7's "flat from 10 to 1,000 channels":
// the 1,000-channel stale ingest rate at least this share of the 10-channel one.
const flatEnough = 0.8

func summary(rep *report) []targetOutcome {
	var out []targetOutcome
	fan := func(channels, size int, limit float64) {
		for _, r := range rep.FanOut {
			if r.Channels == channels && r.SizeBytes == size {
				out = append(out, targetOutcome{
					Measure: fmt.Sprintf("invalidate → %d channel(s) applied, %s, p50", channels, fmtBytes(int64(size))),
					Value:   fmtMs(r.Latency.P50), Peer: "floor " + fmtMs(r.Floor.P50), Ratio: fmt.Sprintf("%.1fx", r.RatioP50),
					Target: fmt.Sprintf("≤ %gx floor", limit), Met: r.RatioP50 > 0 && r.RatioP50 <= limit,
				})
			}
		}
	}
	fan(100, 1<<10, 6)
	fan(1000, 1<<10, 8)
	fan(1, 64<<10, 5)
	rates := map[int]float64{}
	for _, r := range rep.Ingest {
		if !r.Stale {
			continue
		}
		rates[r.Channels] = r.PerSecond
		out = append(out, targetOutcome{
			Measure: fmt.Sprintf("stale invalidations absorbed, %d channels", r.Channels),
			Value:   fmtRate(r.PerSecond), Peer: "floor " + fmtRate(r.FloorPerSecond), Ratio: fmt.Sprintf("%.1fx slower", r.Ratio),
			Target: "≥ 600 k/s", Met: r.PerSecond >= 600000,
		})
	}
	if lo, hi := rates[10], rates[1000]; lo > 0 && hi > 0 {
		out = append(out, targetOutcome{
			Measure: "stale invalidations absorbed, flat from 10 to 1000 channels",
			Value:   fmtRate(hi) + " at 1000", Peer: fmtRate(lo) + " at 10", Ratio: fmt.Sprintf("%.2f", hi/lo),
			Target: fmt.Sprintf("flat (≥ %.1f)", flatEnough), Met: hi/lo >= flatEnough,
		})
	}
	if st := rep.Startup; st != nil {
		if st.ColdStart.N > 0 && st.ColdStartFloor.N > 0 {
			out = append(out, targetOutcome{
				Measure: "cold start: spawn → initialize answered, median",
				Value:   fmtMs(st.ColdStart.P50), Peer: "trivial Go " + fmtMs(st.ColdStartFloor.P50), Ratio: fmt.Sprintf("%.2fx", st.ColdStartRatio),
				Target: "≤ 1.3x", Met: st.ColdStartRatio <= 1.3,
			})
			if n := len(st.Variants); n > 0 && st.Variants[n-1].Tag == boundTag {
				v := st.Variants[n-1]
				out = append(out, targetOutcome{
					Measure: "the same, a program with only the sidecar's imports, flags and signals",
					Value:   fmtMs(v.ColdStart.P50), Peer: "trivial Go " + fmtMs(st.ColdStartFloor.P50), Ratio: fmt.Sprintf("%.2fx", v.Ratio),
					Target: "-", Context: "bound: no server, store or JSON",
				})
			}
		}
		if st.RSSChannels > 0 {
			out = append(out, targetOutcome{
				Measure: fmt.Sprintf("RSS with %d channels", st.Channels),
				Value:   fmtBytes(st.RSSChannels), Peer: "trivial Go " + fmtBytes(st.RSSFloor), Ratio: fmt.Sprintf("%.1fx", ratioOf(st.RSSChannels, st.RSSFloor)),
				Target: "≤ 16 MiB", Met: st.RSSChannels <= 16<<20,
			})
		}
	}
	for _, r := range rep.Bursts {
		target := "≤ bound, each fetch newer"
		if !r.Advancing {
			target = "≤ 2 per provider"
		}
		out = append(out, targetOutcome{
			Measure: fmt.Sprintf("burst %d × %d channels, %s: getSnapshot", r.Events, r.Channels, r.Name),
			Value:   fmt.Sprintf("%d (converged %s)", r.GetSnapshots, fmtMs(r.ConvergeMs)), Peer: fmt.Sprintf("bound %d", r.Bound),
			Ratio: fmt.Sprintf("%.2f of bound", float64(r.GetSnapshots)/float64(max(r.Bound, 1))), Target: target,
			Met: r.GetSnapshots <= r.Bound && r.Repeats == 0,
		})
	}
	return out
}

func ratioOf(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// loadAvg is /proc/loadavg's first three fields: how busy the machine was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func writeJSON(path string, rep *report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// moduleRoot is the folder of the go.mod above the working directory, or the working
// directory itself.
func moduleRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			return wd
		}
	}
}

func exeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if name, value, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// commit names the working tree measured (read-only git; empty without git).
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}

// table prints aligned rows.
type table struct {
	out  io.Writer
	rows [][]string
}

func newTable(out io.Writer, header ...string) *table {
	return &table{out: out, rows: [][]string{header}}
}

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

// flush prints the table, aligned.
func (t *table) flush() {
	widths := make([]int, 0)
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for ri, r := range t.rows {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))+2))
			}
		}
		fmt.Fprintln(t.out, strings.TrimRight(b.String(), " "))
		if ri == 0 {
			var sep strings.Builder
			sep.WriteString("  ")
			for i, w := range widths {
				sep.WriteString(strings.Repeat("-", w))
				if i < len(widths)-1 {
					sep.WriteString("  ")
				}
			}
			fmt.Fprintln(t.out, sep.String())
		}
	}
}
