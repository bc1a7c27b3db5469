// Command demo shows state-sync working: it spawns the sidecar the way a Tauri or
// Electron host does, opens three "windows" on one topic, writes from one of them and
// prints who sent what, which windows applied which revision, and what it cost.
//
//	go tool -modfile=tools/go.mod task demo     (or: go run ./examples/demo)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/state-sync/state-sync/sidecar"
)

func main() {
	bin := flag.String("bin", "", "statesync-sidecar binary (default: build ./cmd/statesync-sidecar)")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// windows are the demo's three windows, in the order they are printed.
var windows = []string{"settings", "editor", "preview"}

func run(ctx context.Context, out io.Writer, bin string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if bin == "" {
		dir, err := os.MkdirTemp("", "statesync-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "statesync-sidecar")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/state-sync/state-sync/cmd/statesync-sidecar")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building the sidecar (run inside the state-sync module): %w", err)
		}
	}

	d := &demo{out: out, start: time.Now(), applied: map[string]string{}, changed: make(chan struct{}), hostState: map[string]any{"zoom": 100}}
	c, err := sidecar.Start(ctx, sidecar.Options{Path: bin, Handler: d, Stderr: os.Stderr})
	if err != nil {
		return err
	}
	defer c.Close(5 * time.Second)

	fmt.Fprintln(out, "state-sync demo: one sidecar, three windows")
	fmt.Fprintln(out)
	var init struct {
		ProtocolVersion string `json:"protocolVersion"`
		Server          struct {
			Version string `json:"version"`
		} `json:"server"`
	}
	if err := c.Call(ctx, "initialize", map[string]any{"protocolVersion": "1", "client": map[string]string{"name": "demo"}}, &init); err != nil {
		return err
	}
	d.line("host", "spawned statesync-sidecar %s; initialize → protocol %s", init.Server.Version, init.ProtocolVersion)

	fmt.Fprintln(out, "\n1. Embedded store: the sidecar holds the state, the host writes no state code.")
	for _, w := range windows {
		var res struct {
			LocalRevision string `json:"localRevision"`
		}
		if err := c.Call(ctx, "channel.open", map[string]any{"channel": w, "topic": "app-config", "source": "store"}, &res); err != nil {
			return err
		}
		d.line(w, "channel.open app-config → revision %s (nothing stored yet, nothing applied)", res.LocalRevision)
	}
	writes := []struct {
		window string
		data   string
	}{
		{"settings", `{"theme":"dark","fontSize":14}`},
		{"editor", `{"theme":"dark","fontSize":16}`},
	}
	for _, wr := range writes {
		var res struct {
			Revision string `json:"revision"`
		}
		if err := c.Call(ctx, "state.set", map[string]any{"topic": "app-config", "data": json.RawMessage(wr.data), "sourceId": wr.window}, &res); err != nil {
			return err
		}
		d.line(wr.window, "state.set %s → revision %s", wr.data, res.Revision)
		if err := d.waitAll(ctx, windows, res.Revision); err != nil {
			return err
		}
		d.flush()
	}
	var late struct {
		LocalRevision string `json:"localRevision"`
	}
	if err := c.Call(ctx, "channel.open", map[string]any{"channel": "about", "topic": "app-config"}, &late); err != nil {
		return err
	}
	d.flush()
	d.line("about", "opened late → at revision %s at once (late join is safe)", late.LocalRevision)

	fmt.Fprintln(out, "\n2. Host as the source of truth: one invalidate, one shared getSnapshot, three applies.")
	for _, w := range windows {
		if err := c.Call(ctx, "channel.open", map[string]any{"channel": w + "/view", "topic": "view", "source": "host"}, nil); err != nil {
			return err
		}
	}
	d.flush()
	d.mu.Lock()
	d.hostState = map[string]any{"zoom": 125}
	d.hostRevision = "2"
	d.fetches = 0
	d.mu.Unlock()
	d.line("host", "state changed; invalidate {topic: view, revision: 2}")
	if err := c.Notify("invalidate", map[string]string{"topic": "view", "revision": "2"}); err != nil {
		return err
	}
	var views []string
	for _, w := range windows {
		views = append(views, w+"/view")
	}
	if err := d.waitAll(ctx, views, "2"); err != nil {
		return err
	}
	d.flush()

	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(out, "\nSummary: %d applies; the store answered part 1 with 0 host fetches; part 2 cost %d getSnapshot for %d windows.\n", d.applies, d.fetches, len(windows))
	return nil
}

// demo is the host: it answers the sidecar and prints the timeline.
type demo struct {
	out   io.Writer
	start time.Time

	mu           sync.Mutex
	pending      []event // applies seen since the last flush
	applied      map[string]string
	applies      int
	fetches      int
	hostState    map[string]any
	hostRevision string
	changed      chan struct{}
}

type event struct {
	at   time.Duration
	who  string
	text string
}

func (d *demo) line(who, format string, args ...any) {
	fmt.Fprintf(d.out, "  %8s  %-14s %s\n", ms(time.Since(d.start)), who, fmt.Sprintf(format, args...))
}

// flush prints the applies seen since the last call, in the order they happened.
func (d *demo) flush() {
	d.mu.Lock()
	events := d.pending
	d.pending = nil
	d.mu.Unlock()
	sort.SliceStable(events, func(i, j int) bool { return events[i].at < events[j].at })
	for _, e := range events {
		fmt.Fprintf(d.out, "  %8s  %-14s %s\n", ms(e.at), e.who, e.text)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("+%.1fms", float64(d.Microseconds())/1000) }

// waitAll waits until every window has applied revision.
func (d *demo) waitAll(ctx context.Context, windows []string, revision string) error {
	for {
		d.mu.Lock()
		done := true
		for _, w := range windows {
			if d.applied[w] != revision {
				done = false
			}
		}
		changed := d.changed
		d.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("windows did not all apply revision %s: %w", revision, ctx.Err())
		}
	}
}

func (d *demo) HandleRequest(_ context.Context, method string, params json.RawMessage) (any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch method {
	case "getSnapshot":
		d.fetches++
		rev := d.hostRevision
		if rev == "" {
			rev = "1"
		}
		d.pending = append(d.pending, event{time.Since(d.start), "host", "answers getSnapshot {topic: view} → revision " + rev})
		return map[string]any{"revision": rev, "data": d.hostState}, nil
	case "apply":
		var p struct {
			Channel  string          `json:"channel"`
			Revision string          `json:"revision"`
			Data     json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		d.applies++
		d.applied[p.Channel] = p.Revision
		d.pending = append(d.pending, event{time.Since(d.start), p.Channel, fmt.Sprintf("apply revision %s %s", p.Revision, strings.TrimSpace(string(p.Data)))})
		close(d.changed)
		d.changed = make(chan struct{})
		return map[string]bool{"applied": true}, nil
	}
	return nil, &sidecar.RPCError{Code: -32601, Message: "the demo host does not answer " + method}
}

func (d *demo) HandleNotification(method string, params json.RawMessage) {
	if method == "error" {
		d.mu.Lock()
		d.pending = append(d.pending, event{time.Since(d.start), "sidecar", "error " + string(params)})
		d.mu.Unlock()
	}
}
