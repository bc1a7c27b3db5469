// Command bench is state-sync's performance harness: it spawns the real statesync-sidecar
// over pipes, drives it as a host does, and prints the numbers of DESIGN §7 next to the
// floor (the same bytes through a trivial child process) measured in the same run.
//
//	go run ./bench               # full run, under 2 minutes; docs/performance.md quotes one
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
// measured round by roundTimeout. Hitting either is a functional failure.
const (
	setupTimeout = 30 * time.Second
	roundTimeout = 20 * time.Second
)

type config struct {
	quick    bool
	jsonPath string
	bin      string
	only     map[string]bool
	channels []int // fan-out channel counts; nil: the plan's
	sizesKiB []int // fan-out snapshot sizes; nil: the plan's
	profile  string
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
	Binary      string          `json:"binary"`
	FanOut      []fanoutResult  `json:"fanOut,omitempty"`
	Bursts      []burstResult   `json:"bursts,omitempty"`
	Ingest      []ingestResult  `json:"ingest,omitempty"`
	Startup     *startupResult  `json:"startup,omitempty"`
	Store       []storeResult   `json:"store,omitempty"`
	Targets     []targetOutcome `json:"targets,omitempty"`
	Failures    []string        `json:"failures,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == echoMode {
		os.Exit(runEcho(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == sidecarMode {
		os.Exit(runSidecar(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout))
}

func run(args []string, out io.Writer) int {
	flags := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	var cfg config
	var only string
	flags.BoolVar(&cfg.quick, "quick", false, "smoke run: few rounds, small budgets (task test runs this)")
	flags.StringVar(&cfg.jsonPath, "json", "", "write the results as JSON here (default: bench/results/<mode>-<time>.json)")
	flags.StringVar(&cfg.bin, "bin", "", "the statesync-sidecar binary to measure (default: build ./cmd/statesync-sidecar into a temp dir)")
	flags.StringVar(&only, "only", "", "comma-separated scenarios to run: fanout,burst,ingest,startup,store (default: all)")
	flags.IntSliceVar(&cfg.channels, "fanout-channels", nil, "fan-out channel counts to run (default 1,10,100,1000)")
	flags.IntSliceVar(&cfg.sizesKiB, "fanout-kib", nil, "fan-out snapshot sizes in KiB (default 1,256)")
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
	if cfg.bin == "" {
		dir, err := os.MkdirTemp("", "statesync-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		cfg.bin = filepath.Join(dir, "statesync-sidecar"+exeSuffix())
		build := exec.Command("go", "build", "-o", cfg.bin, "./cmd/statesync-sidecar")
		build.Dir = root
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
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
	fanChannels  []int
	fanSizes     []int
	fan          budget
	fanBig       budget // 256 KiB cells, whose rounds move N × 256 KiB
	floor        budget
	burstEvents  int
	burstChans   int
	ingestEvents int
	ingestChans  int
	spawns       int
	memChannels  int
	store        budget
	storeChans   int
}

func planFor(quick bool) plan {
	p := plan{
		fanChannels: []int{1, 10, 100, 1000},
		fanSizes:    []int{1 << 10, 256 << 10},
		burstEvents: 10000, burstChans: 100,
		ingestChans: 100,
		memChannels: 1000,
		storeChans:  100,
	}
	if quick {
		p.fan = budget{warmup: 2, rounds: 20, minRounds: 3, maxTime: 300 * time.Millisecond}
		p.fanBig = budget{warmup: 1, rounds: 5, minRounds: 1, maxTime: 300 * time.Millisecond}
		p.floor = budget{warmup: 2, rounds: 20, minRounds: 3, maxTime: 200 * time.Millisecond}
		p.ingestEvents = 20000
		p.spawns = 5
		p.store = budget{warmup: 2, rounds: 20, minRounds: 3, maxTime: 300 * time.Millisecond}
		return p
	}
	p.fan = budget{warmup: 10, rounds: 200, minRounds: 200, maxTime: 10 * time.Second}
	// A 1,000 × 256 KiB round moves 256 MiB (sidecar and floor alike): 200 rounds of it
	// take about a minute here, which these caps bound on a slower machine.
	p.fanBig = budget{warmup: 2, rounds: 200, minRounds: 10, maxTime: 45 * time.Second}
	p.floor = budget{warmup: 10, rounds: 200, minRounds: 20, maxTime: 24 * time.Second}
	p.ingestEvents = 500000
	p.spawns = 30
	p.store = budget{warmup: 10, rounds: 200, minRounds: 200, maxTime: 10 * time.Second}
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
		CPUModel: cpuModel(), Commit: commit(), Binary: cfg.bin,
	}
	rep.Command = strings.TrimSpace(rep.Command)
	p := planFor(cfg.quick)
	if cfg.channels != nil {
		p.fanChannels = cfg.channels
	}
	if cfg.sizesKiB != nil {
		p.fanSizes = nil
		for _, k := range cfg.sizesKiB {
			p.fanSizes = append(p.fanSizes, k<<10)
		}
	}
	want := func(name string) bool { return cfg.only == nil || cfg.only[name] }
	fail := func(err error) {
		rep.Failures = append(rep.Failures, err.Error())
		fmt.Fprintln(out, "  FAILED:", err)
	}
	fmt.Fprintf(out, "statesync-sidecar benchmark (%s) — %s %s/%s, %d CPUs, %s\n", mode, rep.Go, rep.OS, rep.Arch, rep.CPUs, rep.CPUModel)
	if st, err := os.Stat(cfg.bin); err == nil {
		fmt.Fprintf(out, "binary: %s (%s)", cfg.bin, fmtBytes(st.Size()))
	}
	if rep.Commit != "" {
		fmt.Fprintf(out, ", commit %s", rep.Commit)
	}
	fmt.Fprintln(out)

	if want("fanout") {
		fmt.Fprintln(out, "\nFan-out: invalidate → every channel applied (source host; the host answers getSnapshot at once)")
		fmt.Fprintln(out, "  floor = one snapshot-sized line into a trivial child, N copies back, each acked: the same bytes, no protocol")
		tw := newTable(out, "channels", "snapshot", "rounds", "p50", "p99", "floor p50", "floor p99", "×floor p50", "×floor p99", "getSnapshot/round", "peak RSS")
		for _, size := range p.fanSizes {
			for _, n := range p.fanChannels {
				b := p.fan
				if size > 64<<10 {
					b = p.fanBig
				}
				progress("fan-out %d × %s", n, fmtBytes(int64(size)))
				r, err := fanout(cfg.bin, n, size, b, p.floor)
				if err != nil {
					fail(err)
					continue
				}
				rep.FanOut = append(rep.FanOut, r)
				tw.row(fmt.Sprint(n), fmtBytes(int64(size)), fmt.Sprint(r.Rounds), fmtMs(r.Latency.P50), fmtMs(r.Latency.P99),
					fmtMs(r.Floor.P50), fmtMs(r.Floor.P99), fmt.Sprintf("%.1f", r.RatioP50), fmt.Sprintf("%.1f", r.RatioP99),
					fmt.Sprintf("%.2f", r.GetSnapshots), fmtBytes(r.PeakRSSBytes))
				warnErrors(out, "fan-out", r.ErrorNotifs, r.FirstErrors)
			}
		}
		tw.flush()
	}

	if want("burst") {
		fmt.Fprintf(out, "\nBurst: %d invalidations on one topic, %d channels, 1 KiB snapshot\n", p.burstEvents, p.burstChans)
		tw := newTable(out, "case", "source", "getSnapshot", "applies/channel min/mean/max", "converged in")
		cases := []struct {
			name, source string
			advancing    bool
		}{
			{"sharing on", "host", false},
			{"sharing off", "channel", false},
			{"sharing on, host state advancing", "host", true},
			{"sharing off, host state advancing", "channel", true},
		}
		for _, c := range cases {
			progress("burst, %s", c.name)
			r, err := burst(cfg.bin, c.name, c.source, p.burstChans, p.burstEvents, c.advancing)
			if err != nil {
				fail(err)
				continue
			}
			rep.Bursts = append(rep.Bursts, r)
			tw.row(c.name, c.source, fmt.Sprint(r.GetSnapshots), fmt.Sprintf("%d / %.1f / %d", r.AppliesMin, r.AppliesMean, r.AppliesMax), fmtMs(r.ConvergeMs))
			warnErrors(out, "burst", r.ErrorNotifs, r.FirstErrors)
		}
		tw.flush()
		fmt.Fprintln(out, "  host state at the final revision when the burst starts (DESIGN §4's burst), or advancing as the events are written")
	}

	if want("ingest") {
		fmt.Fprintf(out, "\nIngest: %d invalidate notifications written as fast as the pipe takes them, %d channels (source host)\n", p.ingestEvents, p.ingestChans)
		tw := newTable(out, "case", "absorbed", "time", "getSnapshot", "applies")
		for _, c := range []struct {
			name  string
			stale bool
		}{{"increasing revisions (fetch + fan-out while reading)", false}, {"stale revisions (parse, route, revision gate)", true}} {
			progress("ingest, %s", c.name)
			r, err := ingest(cfg.bin, c.name, p.ingestChans, p.ingestEvents, c.stale)
			if err != nil {
				fail(err)
				continue
			}
			rep.Ingest = append(rep.Ingest, r)
			tw.row(c.name, fmtRate(r.PerSecond), fmtMs(r.Seconds*1000), fmt.Sprint(r.GetSnapshots), fmt.Sprint(r.Applies))
			warnErrors(out, "ingest", r.ErrorNotifs, r.FirstErrors)
		}
		tw.flush()
	}

	if want("startup") {
		fmt.Fprintln(out, "\nCold start, memory, size")
		st := &startupResult{Channels: p.memChannels}
		if fi, err := os.Stat(cfg.bin); err == nil {
			st.BinaryBytes = fi.Size()
		}
		progress("cold start, memory")
		samples, err := coldStart(cfg.bin, sidecarArgs, p.spawns)
		if err != nil {
			fail(err)
		} else {
			st.ColdStart = summarize(samples)
		}
		if self, err := os.Executable(); err == nil {
			if floor, err := coldStart(self, []string{echoMode}, p.spawns); err != nil {
				fail(err)
			} else {
				st.ColdStartFloor = summarize(floor)
			}
		}
		idle, open, peak, err := memory(cfg.bin, p.memChannels)
		if err != nil {
			fail(err)
		}
		st.RSSIdle, st.RSSChannels, st.PeakChannels = idle, open, peak
		rep.Startup = st
		tw := newTable(out, "measure", "value", "floor / note")
		tw.row(fmt.Sprintf("cold start: spawn → initialize answered (median of %d)", st.ColdStart.N), fmtMs(st.ColdStart.P50),
			fmt.Sprintf("p99 %s; floor %s (a trivial Go child: spawn → one line echoed)", fmtMs(st.ColdStart.P99), fmtMs(st.ColdStartFloor.P50)))
		tw.row("RSS idle (after initialize)", fmtBytes(st.RSSIdle), "VmRSS")
		tw.row(fmt.Sprintf("RSS with %d open channels", st.Channels), fmtBytes(st.RSSChannels), "VmRSS; peak (VmHWM) "+fmtBytes(st.PeakChannels))
		tw.row("binary size", fmtBytes(st.BinaryBytes), "go build, not stripped")
		tw.flush()
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

	rep.Targets = evaluate(rep)
	if len(rep.Targets) > 0 {
		fmt.Fprintln(out, "\nTargets (DESIGN §7; reported, never asserted)")
		tw := newTable(out, "target", "measured", "")
		for _, t := range rep.Targets {
			verdict := "met"
			if !t.Met {
				verdict = "MISSED"
			}
			tw.row(t.Target, t.Measured, verdict)
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

// targetOutcome is one line of DESIGN §7.
type targetOutcome struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

func evaluate(rep *report) []targetOutcome {
	var out []targetOutcome
	for _, r := range rep.FanOut {
		if r.Channels == 100 && r.SizeBytes == 1<<10 {
			out = append(out,
				targetOutcome{"fan-out 100 channels × 1 KiB: p50 < 2 ms", fmtMs(r.Latency.P50), r.Latency.P50 < 2},
				targetOutcome{"fan-out 100 channels × 1 KiB: p99 < 10 ms", fmtMs(r.Latency.P99), r.Latency.P99 < 10})
		}
	}
	for _, r := range rep.Bursts {
		if r.Source == "host" && !r.Advancing {
			out = append(out, targetOutcome{fmt.Sprintf("burst of %d, %d channels, sharing: ≤ 2 getSnapshot, all converge", r.Events, r.Channels),
				fmt.Sprintf("%d getSnapshot, converged in %s", r.GetSnapshots, fmtMs(r.ConvergeMs)), r.GetSnapshots <= 2})
		}
	}
	for _, r := range rep.Ingest {
		out = append(out, targetOutcome{"ingest ≥ 200k invalidate/s, " + r.Name, fmtRate(r.PerSecond), r.PerSecond >= 200000})
	}
	if st := rep.Startup; st != nil {
		if st.ColdStart.N > 0 {
			out = append(out, targetOutcome{"cold start < 5 ms (median)", fmtMs(st.ColdStart.P50), st.ColdStart.P50 < 5})
		}
		if st.RSSIdle > 0 {
			out = append(out, targetOutcome{"RSS idle < 15 MiB", fmtBytes(st.RSSIdle), st.RSSIdle < 15<<20})
		}
		if st.RSSChannels > 0 {
			out = append(out, targetOutcome{fmt.Sprintf("RSS with %d channels < 64 MiB", st.Channels), fmtBytes(st.RSSChannels), st.RSSChannels < 64<<20})
		}
	}
	return out
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
