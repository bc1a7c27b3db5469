// Package nats tests the NATS store for real: in-process nats-server nodes (one, or a
// 3-node JetStream cluster) on random loopback ports, and real sidecar processes that
// share a bucket, talked to over pipes exactly as a host would.
package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/internal/sidecarbin"
	"github.com/state-sync/state-sync/sidecar"
)

var binary string

func TestMain(m *testing.M) { sidecarbin.Main(m, &binary, "-race", "-tags", "nats") }

// testTimeout bounds every wait; the suite as a whole takes a fraction of it.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// freePorts reserves n loopback ports by listening on port 0, and frees them for the
// servers that follow (a cluster's routes must name every port before any node starts).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// node is one in-process nats-server.
type node struct {
	opts *server.Options
	srv  *server.Server
}

// startNode starts a server from opts (loopback, JetStream in a temp dir unless set)
// and shuts it down at the end of the test.
func startNode(t *testing.T, opts *server.Options) *node {
	t.Helper()
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = -1
	}
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	opts.JetStream = true
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second), "nats-server did not get ready")
	n := &node{opts: opts, srv: srv}
	t.Cleanup(n.stop)
	return n
}

func (n *node) url() string { return n.srv.ClientURL() }

func (n *node) stop() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// startCluster starts a 3-node JetStream cluster and waits until it has a meta leader.
func startCluster(t *testing.T) []*node {
	t.Helper()
	ports := freePorts(t, 6)
	var routes []string
	for i := range 3 {
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(ports[3+i]))
	}
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, &server.Options{
			ServerName: "n" + strconv.Itoa(i),
			Port:       ports[i],
			Cluster:    server.ClusterOpts{Name: "statesync-test", Host: "127.0.0.1", Port: ports[3+i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}))
	}
	waitUntil(t, "a JetStream meta leader", func() bool {
		for _, n := range nodes {
			if n.srv.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return nodes
}

func clusterURLs(nodes []*node) string {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url())
	}
	return strings.Join(urls, ",")
}

// waitUntil polls cond, for server state that has no event to wait on (leader election,
// reconnection), until it holds or the test times out.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(testTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// window is what a host knows of one channel: what it last applied.
type window struct {
	revision string
	epoch    string
	data     json.RawMessage
	applies  int
}

// host answers the sidecar's apply calls and records each channel's window.
type host struct {
	name    string
	mu      sync.Mutex
	windows map[string]*window
	changed chan struct{}
	onApply func(channel, revision string) // under mu
}

func newHost(name string) *host {
	return &host{name: name, windows: map[string]*window{}, changed: make(chan struct{})}
}

func (h *host) HandleRequest(_ context.Context, method string, params json.RawMessage) (any, error) {
	if method != "apply" {
		return nil, &sidecar.RPCError{Code: -32601, Message: "unexpected method " + method}
	}
	var p struct {
		Channel, Revision, Epoch string
		Data                     json.RawMessage
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.windows[p.Channel]
	if w == nil {
		w = &window{}
		h.windows[p.Channel] = w
	}
	w.revision, w.epoch, w.data = p.Revision, p.Epoch, p.Data
	w.applies++
	if h.onApply != nil {
		h.onApply(p.Channel, p.Revision)
	}
	close(h.changed)
	h.changed = make(chan struct{})
	return true, nil
}

func (h *host) HandleNotification(string, json.RawMessage) {}

// waitWindow blocks until channel's window satisfies cond.
func (h *host) waitWindow(t *testing.T, channel, what string, cond func(w window) bool) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		h.mu.Lock()
		var w window
		if p := h.windows[channel]; p != nil {
			w = *p
		}
		changed := h.changed
		h.mu.Unlock()
		if cond(w) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s: window %s: timed out waiting for %s; it holds revision %q data %s", h.name, channel, what, w.revision, w.data)
		}
	}
}

func (h *host) window(channel string) window {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := h.windows[channel]; w != nil {
		return *w
	}
	return window{}
}

// sidecarProc is one running sidecar with its host.
type sidecarProc struct {
	*sidecar.Client
	host *host
}

// startSidecar spawns the sidecar on the NATS store and closes it at the end of the test.
func startSidecar(t *testing.T, name string, args ...string) *sidecarProc {
	t.Helper()
	h := newHost(name)
	c, err := sidecar.Start(context.Background(), sidecar.Options{Path: binary, Args: args, Handler: h, Stderr: os.Stderr})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(5 * time.Second) })
	// initialize answers only once main has opened the store: the sidecar is ready.
	var init map[string]any
	require.NoError(t, c.Call(testContext(t), "initialize", map[string]any{"protocolVersion": "1"}, &init))
	return &sidecarProc{Client: c, host: h}
}

func (p *sidecarProc) call(t *testing.T, method string, params any) json.RawMessage {
	t.Helper()
	var raw json.RawMessage
	require.NoError(t, p.Call(testContext(t), method, params, &raw), "%s: %s %v", p.host.name, method, params)
	return raw
}

func (p *sidecarProc) callErr(t *testing.T, method string, params any) *sidecar.RPCError {
	t.Helper()
	err := p.Call(testContext(t), method, params, nil)
	require.Error(t, err, "%s: %s %v: want an error answer", p.host.name, method, params)
	var rpcErr *sidecar.RPCError
	require.ErrorAs(t, err, &rpcErr)
	return rpcErr
}

// set writes data and returns the revision.
func (p *sidecarProc) set(t *testing.T, topic, data string) string {
	t.Helper()
	var r struct{ Revision string }
	require.NoError(t, json.Unmarshal(p.call(t, "state.set", map[string]any{"topic": topic, "data": json.RawMessage(data)}), &r))
	return r.Revision
}

func (p *sidecarProc) get(t *testing.T, topic string) (revision string, data json.RawMessage) {
	t.Helper()
	var r struct {
		Revision string
		Data     json.RawMessage
	}
	require.NoError(t, json.Unmarshal(p.call(t, "state.get", map[string]any{"topic": topic}), &r))
	return r.Revision, r.Data
}

// open opens a store channel and returns its local revision.
func (p *sidecarProc) open(t *testing.T, channel, topic string) string {
	t.Helper()
	var r struct{ LocalRevision string }
	require.NoError(t, json.Unmarshal(p.call(t, "channel.open", map[string]any{"channel": channel, "topic": topic, "source": "store"}), &r))
	return r.LocalRevision
}

// runFailing runs the sidecar with args, expecting it to exit at startup, and returns
// its exit code and stderr.
func runFailing(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdin = strings.NewReader("")
	err := cmd.Run()
	require.Error(t, err, "want a failed start; stderr: %s", stderr.String())
	require.NoError(t, ctx.Err(), "the sidecar did not exit by itself")
	t.Logf("stderr: %s", stderr.String())
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// revLess compares canonical revisions.
func revLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

type rpcError = sidecar.RPCError
