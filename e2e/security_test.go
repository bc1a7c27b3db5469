//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/sidecar"
)

// Security: what the sidecar exposes besides its stdio, what it writes to disk, what it
// logs, and how much of a hostile input it echoes. docs/security.md is the threat model.

// socketInodes lists the sockets among pid's open files, and every fd's target.
func socketInodes(t *testing.T, pid int) (sockets []string, fds map[string]string) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	fds = map[string]string{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		fds[e.Name()] = target
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			sockets = append(sockets, strings.TrimSuffix(inode, "]"))
		}
	}
	return sockets, fds
}

// listeningInodes lists the inodes of listening (TCP) or bound (UDP) sockets in pid's
// network namespace, from /proc/PID/net/{tcp,tcp6,udp,udp6}.
func listeningInodes(t *testing.T, pid int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if os.IsNotExist(err) {
			continue // no IPv6 in this kernel
		}
		require.NoError(t, err)
		for i, line := range strings.Split(string(raw), "\n") {
			fields := strings.Fields(line)
			if i == 0 || len(fields) < 10 {
				continue
			}
			// TCP state 0A is LISTEN; a UDP socket in state 07 is bound and receiving.
			if (strings.HasPrefix(proto, "tcp") && fields[3] == "0A") || (strings.HasPrefix(proto, "udp") && fields[3] == "07") {
				out[fields[9]] = proto + " " + fields[1]
			}
		}
	}
	return out
}

// requireNoSockets checks that pid holds no socket at all (so none listens), and that
// no listening socket of its network namespace belongs to it.
func requireNoSockets(t *testing.T, pid int, when string) {
	t.Helper()
	sockets, fds := socketInodes(t, pid)
	require.Empty(t, sockets, "%s: the sidecar holds sockets: open files %v", when, fds)
	listening := listeningInodes(t, pid)
	for _, inode := range sockets {
		require.NotContains(t, listening, inode, "%s: the sidecar listens on %s", when, listening[inode])
	}
	for fd, target := range fds {
		// The Go runtime keeps the cgroup CPU limit open to size GOMAXPROCS.
		ok := strings.HasPrefix(target, "pipe:") || strings.HasPrefix(target, "anon_inode:") ||
			strings.HasSuffix(target, ".lock") || target == "/dev/null" || strings.HasPrefix(target, "/dev/pts/") ||
			strings.HasPrefix(target, "/sys/fs/cgroup/")
		require.True(t, ok, "%s: fd %s is %s: the sidecar keeps only its stdio pipes, runtime handles and the store lock open", when, fd, target)
	}
}

// The sidecar never opens a network socket: with every feature on (file store, LSP
// framing, trace, debug logs, parent watchdog), idle and under traffic, it holds nothing
// but its pipes, the runtime's own handles and the store's lock file.
func TestNoNetworkSocket(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"--framing", "lsp", "--trace", "--log-level", "debug", "--store-file", filepath.Join(t.TempDir(), "s.json"), "--parent-pid", strconv.Itoa(os.Getpid())},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			host := newFakeHost()
			host.set("h", "1", `{"v":1}`)
			framing := "ndjson"
			if len(args) > 1 {
				framing = "lsp"
			}
			c, err := sidecar.Start(context.Background(), sidecar.Options{Path: binary, Args: args, Handler: host, Stderr: io.Discard, Framing: framing, Record: host.recorder()})
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close(5 * time.Second) })
			call(t, c, "initialize", map[string]string{"protocolVersion": "1"})
			requireNoSockets(t, c.Pid(), "idle")
			for i := range 20 {
				call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("h", i), "topic": "h", "source": "host"})
				call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("s", i), "topic": "s"})
				call(t, c, "state.set", map[string]any{"topic": "s", "data": i})
			}
			host.set("h", "2", `{"v":2}`)
			call(t, c, "invalidate", map[string]string{"topic": "h", "revision": "2"})
			require.NoError(t, c.WriteRaw([]byte("garbage\n")))
			requireNoSockets(t, c.Pid(), "under traffic")
			host.waitFor(t, "every channel applied", func() bool {
				for i := range 20 {
					if host.lastApplied(fmt.Sprint("h", i)) != "2" || host.lastApplied(fmt.Sprint("s", i)) != "20" {
						return false
					}
				}
				return true
			})
			requireNoSockets(t, c.Pid(), "after the traffic")
		})
	}
}

// The sidecar creates no file but the store file and its lock (both 0600), and its
// temporary files, which it removes: nothing in its working folder, TMPDIR or HOME,
// whatever it does, up to and including being stopped by a signal.
func TestCreatesNoFileButTheStore(t *testing.T) {
	cwd, tmp, home, storeDir := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	path := filepath.Join(storeDir, "state.json")
	host := newFakeHost()
	host.set("h", "1", `1`)
	cmd := exec.Command(binary, "--store-file", path, "--log-level", "debug", "--trace")
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"), "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_STATE_HOME="+filepath.Join(home, ".state"))
	c, err := startCmd(cmd, host)
	require.NoError(t, err)
	for i := range 10 {
		call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("w", i), "topic": "t"})
		call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("h", i), "topic": "h", "source": "host"})
	}
	for i := range 200 {
		call(t, c, "state.set", map[string]any{"topic": fmt.Sprint("t", i%7), "data": strings.Repeat("d", i)})
	}
	callErr(t, c, "state.set", map[string]any{"topic": "t", "data": 1, "expectedRevision": "99"})
	require.NoError(t, c.WriteRaw([]byte("garbage\n")))
	call(t, c, "channel.list", nil)
	require.NoError(t, syscall.Kill(c.Pid(), syscall.SIGTERM))
	select {
	case <-c.Exited():
	case <-time.After(testTimeout):
		t.Fatal("no exit after SIGTERM")
	}
	require.Equal(t, 0, c.ExitCode())

	for name, dir := range map[string]string{"working folder": cwd, "TMPDIR": tmp, "HOME": home} {
		require.Empty(t, dirListing(t, dir), "files created in the %s", name)
	}
	require.Equal(t, map[string]string{"state.json": "-rw-------", "state.json.lock": "-rw-------"}, dirListing(t, storeDir))
}

// startCmd runs a prepared command as the sidecar with host as its host.
func startCmd(cmd *exec.Cmd, host *fakeHost) (*sidecar.Client, error) {
	// sidecar.Start builds its own command; a wrapper script keeps Dir and Env.
	script := filepath.Join(cmd.Dir, "..", fmt.Sprintf("run-%d.sh", time.Now().UnixNano()))
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\ncd %q || exit 99\n", cmd.Dir)
	for _, kv := range cmd.Env {
		if k, _, ok := strings.Cut(kv, "="); ok && (k == "TMPDIR" || k == "HOME" || strings.HasPrefix(k, "XDG_")) {
			fmt.Fprintf(&b, "export %s\n", shellQuote(kv))
		}
	}
	b.WriteString("exec")
	for _, a := range cmd.Args {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString("\n")
	if err := os.WriteFile(script, []byte(b.String()), 0o700); err != nil {
		return nil, err
	}
	return sidecar.Start(context.Background(), sidecar.Options{Path: script, Handler: host, Stderr: io.Discard, Record: host.recorder()})
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// stderrCapture collects a sidecar's stderr.
type stderrCapture struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *stderrCapture) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *stderrCapture) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// Only --trace prints data. At --log-level debug without it, no state (from state.set,
// from getSnapshot answers, in applies) reaches stderr; with it, every message does.
func TestOnlyTraceLogsData(t *testing.T) {
	marker := func() string {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		return "MARKER-" + hex.EncodeToString(b)
	}
	run := func(t *testing.T, trace bool) (string, string) {
		secret := marker()
		host := newFakeHost()
		host.set("h", "1", fmt.Sprintf(`{"secret":%q}`, secret))
		args := []string{"--log-level", "debug", "--call-timeout", "200ms"}
		if trace {
			args = append(args, "--trace")
		}
		stderr := &stderrCapture{}
		c, err := sidecar.Start(context.Background(), sidecar.Options{Path: binary, Args: args, Handler: host, Stderr: stderr, Record: host.recorder()})
		require.NoError(t, err)
		call(t, c, "state.set", map[string]any{"topic": "s", "data": map[string]string{"secret": secret}})
		call(t, c, "channel.open", map[string]any{"channel": "a", "topic": "s"})
		call(t, c, "channel.open", map[string]any{"channel": "b", "topic": "h", "source": "host"})
		call(t, c, "state.get", map[string]string{"topic": "s"})
		// Failures carrying data: an apply refused, a snapshot older than announced, and a
		// getSnapshot answer that comes too late.
		host.mu.Lock()
		host.applyErr["b"] = &sidecar.RPCError{Code: -32000, Message: "window busy"}
		host.state["h"] = snapshot{Revision: "2", Data: json.RawMessage(fmt.Sprintf(`{"secret":%q}`, secret))}
		host.mu.Unlock()
		call(t, c, "invalidate", map[string]string{"topic": "h", "revision": "3"})
		host.waitFor(t, "an error reported", func() bool { return len(host.errors) > 0 })
		call(t, c, "channel.list", nil)
		require.NoError(t, c.Close(5*time.Second))
		return secret, stderr.String()
	}
	t.Run("debug without trace", func(t *testing.T) {
		secret, stderr := run(t, false)
		require.NotEmpty(t, stderr, "debug logging wrote nothing")
		require.NotContains(t, stderr, secret, "data reached stderr without --trace")
		require.NotContains(t, stderr, "secret", "data reached stderr without --trace")
	})
	t.Run("with trace", func(t *testing.T) {
		secret, stderr := run(t, true)
		require.Contains(t, stderr, secret, "--trace did not print the data")
	})
}

// Error answers, error notifications and log lines quote at most a bounded prefix of a
// hostile input: 100 KiB of it come back as a few hundred bytes at most.
func TestErrorsEchoABoundedPrefixOfBadInput(t *testing.T) {
	const bound = 1024 // bytes of one error message or one log line
	huge := strings.Repeat("A", 100<<10)
	stderr := &stderrCapture{}
	host := newFakeHost()
	host.set("t", "1", `1`)
	c, err := sidecar.Start(context.Background(), sidecar.Options{Path: binary, Args: []string{"--log-level", "debug"}, Handler: host, Stderr: stderr, Record: host.recorder()})
	require.NoError(t, err)
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "t", "source": "channel"})

	for _, tc := range []struct {
		what   string
		method string
		params any
		code   int64
	}{
		{"a bad revision", "invalidate", map[string]string{"topic": "t", "revision": huge}, -32602},
		{"a bad revision with leading zeros", "invalidate", map[string]string{"topic": "t", "revision": "0" + strings.Repeat("1", 100<<10)}, -32602},
		{"a bad expectedRevision", "state.set", map[string]any{"topic": "t", "data": 1, "expectedRevision": huge}, -32602},
		{"an unknown channel", "channel.close", map[string]string{"channel": "never-opened-" + huge[:900]}, -32001},
		{"a channel name over engine.MaxNameBytes", "channel.close", map[string]string{"channel": huge}, -32602},
		{"an unknown method", huge, nil, -32601},
		{"an unknown protocol version", "initialize", map[string]string{"protocolVersion": huge}, -32006},
		{"a wrong type", "channel.open", map[string]any{"channel": "x", "topic": "t", "source": huge}, -32602},
		{"a bad timestamp", "invalidate", map[string]any{"topic": "t", "revision": "1", "timestampMs": huge}, -32602},
		{"a topic of another channel", "invalidate", map[string]string{"topic": huge, "revision": "1", "channel": "w"}, -32602},
		{"an unknown member", "channel.open", map[string]any{"channel": "x", "topic": "t", huge: 1}, -32602},
		{"an unknown option", "channel.open", map[string]any{"channel": "x", "topic": "t", "options": map[string]any{huge: 1}}, -32602},
		{"a wrong type in a known member", "channel.open", map[string]any{"channel": "x", "topic": "t", "options": map[string]any{"retry": map[string]any{"maxAttempts": huge}}}, -32602},
		{"params that are not an object", "channel.status", huge, -32602},
	} {
		e := callErr(t, c, tc.method, tc.params)
		require.EqualValues(t, tc.code, e.Code, "%s: %.300s", tc.what, e.Message)
		assert.Less(t, len(e.Message)+len(e.Data), bound, "%s: the error echoes %d bytes: %.300s…", tc.what, len(e.Message)+len(e.Data), e.Message)
	}

	// Garbage lines, and a garbage notification that is answered by an error notification.
	require.NoError(t, c.WriteRaw([]byte(huge+"\n")))
	require.NoError(t, c.WriteRaw([]byte(`{"jsonrpc":"2.0","id":`+huge+"\n")))
	require.NoError(t, c.WriteRaw([]byte(`{"jsonrpc":"2.0","id":"`+huge+`","method":"x"}`+"\n")))
	require.NoError(t, c.Notify("invalidate", map[string]string{"topic": "t", "revision": huge}))
	require.NoError(t, c.Notify("invalidate", map[string]string{"topic": "t", "revision": huge, "channel": "w"}))
	host.waitFor(t, "two error notifications", func() bool { return len(host.errors) >= 2 })
	call(t, c, "channel.list", nil)
	for _, f := range host.frames.all() {
		frame, ok := strings.CutPrefix(f, "<- ")
		if !ok || !strings.Contains(frame, `"error"`) {
			continue
		}
		var msg struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			Error  json.RawMessage `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(frame), &msg))
		// An answer carries the request's id back, as JSON-RPC wants, whatever its size:
		// what is bounded is the error object, and a notification's whole context.
		echoed := len(msg.Error)
		if msg.Method == "error" {
			echoed = len(msg.Params)
		}
		assert.Less(t, echoed, 2*bound, "an answer or notification echoes the input: %.300s…", frame)
	}
	require.NoError(t, c.Close(5*time.Second))
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	lines := 0
	for sc.Scan() {
		lines++
		assert.Less(t, len(sc.Text()), 2*bound, "a log line echoes the input: %.300s…", sc.Text())
	}
	require.NoError(t, sc.Err(), "a log line longer than 4 MiB")
	require.Positive(t, lines)
}
