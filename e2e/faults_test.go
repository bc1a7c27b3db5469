//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/sidecar"
)

// Faults: the host goes away, reads slowly or never answers; inputs exceed the limits;
// the store's disk fills up or turns read-only. The tests that measure resident memory
// run a binary built without -race, whose memory is the one users get.

// startPlain spawns the non-race binary with host as its host.
func startPlain(t *testing.T, host sidecar.Handler, args ...string) *sidecar.Client {
	t.Helper()
	opts := sidecar.Options{Path: plainBinary(t), Args: args, Handler: host, Stderr: os.Stderr}
	if fh, ok := host.(*fakeHost); ok {
		opts.Record = fh.recorder()
	}
	c, err := sidecar.Start(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(5 * time.Second) })
	return c
}

func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	kib, err := procStatusKiB(pid, "VmRSS")
	require.NoError(t, err)
	return kib
}

// stubbornHost answers getSnapshot with a big snapshot at the revision a test sets, and
// never answers apply once blockApply is set: every apply costs the sidecar one call
// timeout.
type stubbornHost struct {
	mu         sync.Mutex
	rev        int
	data       json.RawMessage
	blockApply bool
	errs       chan stubbornError
}

type stubbornError struct {
	phase    string
	revision string // the snapshot's (apply) or the event's (getSnapshot)
}

func (h *stubbornHost) HandleRequest(ctx context.Context, method string, params json.RawMessage) (any, error) {
	h.mu.Lock()
	rev, data, block := h.rev, h.data, h.blockApply
	h.mu.Unlock()
	switch method {
	case "getSnapshot":
		return map[string]any{"revision": fmt.Sprint(rev), "data": data}, nil
	case "apply":
		if block {
			<-ctx.Done() // never answered while the sidecar lives
			return nil, ctx.Err()
		}
		return true, nil
	}
	return nil, &sidecar.RPCError{Code: -32601, Message: method}
}

func (h *stubbornHost) HandleNotification(method string, params json.RawMessage) {
	var p struct {
		Phase            string `json:"phase"`
		SnapshotRevision string `json:"snapshotRevision"`
		EventRevision    string `json:"eventRevision"`
	}
	if method != "error" || json.Unmarshal(params, &p) != nil {
		return
	}
	rev := p.SnapshotRevision
	if p.Phase != "apply" {
		rev = p.EventRevision
	}
	h.errs <- stubbornError{phase: p.Phase, revision: rev}
}

// A host that never answers apply costs one call timeout per apply, and nothing more:
// the sidecar keeps no trace of a call it gave up on. Each apply here carries 256 KiB
// (store writes, so that only applies go to the host), so calls kept after their timeout
// show as tens of MiB of growth: with jsonrpc2's pending table (before commit 0878c33),
// 192 of them grew the sidecar by 87 MiB.
func TestTimedOutCallsDoNotGrowMemory(t *testing.T) {
	data := json.RawMessage(`"` + strings.Repeat("x", 256<<10) + `"`)
	host := &stubbornHost{blockApply: true, errs: make(chan stubbornError, 1024)}
	c := startPlain(t, host, "--call-timeout", "20ms")
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "doc"}) // nothing stored yet: no apply

	timeouts := func(n int) {
		for range n {
			var res struct {
				Revision string `json:"revision"`
			}
			require.NoError(t, json.Unmarshal(call(t, c, "state.set", map[string]any{"topic": "doc", "data": data}), &res))
			select {
			case got := <-host.errs:
				require.Equal(t, stubbornError{phase: "apply", revision: res.Revision}, got)
			case <-time.After(testTimeout):
				t.Fatalf("no apply timeout reported for revision %s", res.Revision)
			}
		}
	}
	timeouts(32) // warm-up: buffers and the runtime reach their working size
	before := rssKiB(t, c.Pid())
	timeouts(192)
	after := rssKiB(t, c.Pid())
	t.Logf("resident memory: %d KiB after 32 timed-out applies of 256 KiB, %d KiB after 192 more", before, after)
	require.Less(t, after-before, 24<<10, "resident memory grew by %d KiB over 192 timed-out applies of 256 KiB: calls given up on are kept", after-before)
	res := call(t, c, "channel.status", map[string]string{"channel": "w"})
	require.Contains(t, string(res), `"localRevision":"0"`, "no apply was answered, so the channel stays at 0")
}

// --- Host gone ---

// TestFaultsHelperHost is not a test of its own: TestExitsWhenTheHostIsKilled runs the
// test binary again as a host process (STATESYNC_FAULTS_HELPER=host) that spawns the
// sidecar on pipes only it holds, keeps it busy, and is then SIGKILLed.
func TestFaultsHelperHost(t *testing.T) {
	if os.Getenv("STATESYNC_FAULTS_HELPER") != "host" {
		t.Skip("helper process of TestExitsWhenTheHostIsKilled")
	}
	c, err := sidecar.Start(context.Background(), sidecar.Options{Path: os.Getenv("STATESYNC_FAULTS_SIDECAR"), Handler: ackHost{}, Stderr: os.Stderr})
	if err != nil {
		fmt.Println("error", err)
		return
	}
	ctx := context.Background()
	for i := range 20 {
		if err := c.Call(ctx, "channel.open", map[string]any{"channel": fmt.Sprint("w", i), "topic": "doc"}, nil); err != nil {
			fmt.Println("error", err)
			return
		}
	}
	fmt.Printf("pid %d\n", c.Pid())
	data := json.RawMessage(`"` + strings.Repeat("s", 16<<10) + `"`)
	for i := 0; ; i++ { // a write storm: every write fans out 20 applies of 16 KiB
		if err := c.Call(ctx, "state.set", map[string]any{"topic": "doc", "data": data}, nil); err != nil {
			return
		}
		if i == 50 {
			fmt.Println("storming")
		}
	}
}

// ackHost acknowledges every apply.
type ackHost struct{}

func (ackHost) HandleRequest(context.Context, string, json.RawMessage) (any, error) { return true, nil }
func (ackHost) HandleNotification(string, json.RawMessage)                          {}

// subreaper makes this process the one that inherits orphans (PR_SET_CHILD_SUBREAPER)
// for the test, so that a sidecar whose parent died can be waited for and its exit status
// read, whatever PID 1 does with orphans in this container.
func subreaper(t *testing.T) {
	t.Helper()
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Skipf("prctl(PR_SET_CHILD_SUBREAPER): %v: cannot adopt the orphaned sidecar to read its exit status", errno)
	}
	t.Cleanup(func() { _, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 0, 0) })
}

// reap waits for pid, a child (adopted or not), and returns its status and when it was
// reaped. It fails the test if pid does not exit within testTimeout (and kills it).
func reap(t *testing.T, pid int) (syscall.WaitStatus, time.Time) {
	t.Helper()
	type result struct {
		ws  syscall.WaitStatus
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		done <- result{ws, time.Now(), err}
	}()
	select {
	case r := <-done:
		require.NoError(t, r.err, "wait4(%d)", pid)
		return r.ws, r.at
	case <-time.After(testTimeout):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("sidecar %d did not exit within %v of its host's death", pid, testTimeout)
		panic("unreachable")
	}
}

// requireCleanExit checks a reaped sidecar exited 0 within bound of from.
func requireCleanExit(t *testing.T, pid int, ws syscall.WaitStatus, from, at time.Time, bound time.Duration) {
	t.Helper()
	took := at.Sub(from)
	t.Logf("sidecar exited %s after the trigger (status %v)", took, ws)
	require.False(t, ws.Signaled(), "sidecar was killed by signal %v, want exit 0", ws.Signal())
	require.True(t, ws.Exited(), "sidecar status %v, want exited", ws)
	require.Equal(t, 0, ws.ExitStatus(), "sidecar exit code")
	require.Less(t, took, bound, "sidecar took %s to exit after its host died, want < %s", took, bound)
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	require.True(t, os.IsNotExist(err), "sidecar %d still in /proc after it was reaped", pid)
	require.Empty(t, childrenOf(t, pid), "processes left behind by sidecar %d", pid)
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}

// A host killed with SIGKILL cannot say goodbye; its death closes the sidecar's stdin
// (and stdout). The sidecar exits 0 within 200 ms, even in the middle of a write storm
// (writing to a stdout nobody reads any more must not kill it with SIGPIPE), and leaves
// no process behind.
func TestExitsWhenTheHostIsKilled(t *testing.T) {
	subreaper(t)
	helper := exec.Command(os.Args[0], "-test.run=^TestFaultsHelperHost$", "-test.count=1")
	helper.Env = append(os.Environ(), "STATESYNC_FAULTS_HELPER=host", "STATESYNC_FAULTS_SIDECAR="+binary)
	helper.Stderr = os.Stderr
	out, err := helper.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, helper.Start())
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	pid := 0
	for storming := false; !storming; {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "the helper host ended before the storm")
			require.False(t, strings.HasPrefix(line, "error"), "helper host: %s", line)
			if n, found := strings.CutPrefix(line, "pid "); found {
				pid, err = strconv.Atoi(n)
				require.NoError(t, err)
			}
			storming = line == "storming"
		case <-time.After(testTimeout):
			_ = helper.Process.Kill()
			t.Fatal("the helper host did not start its write storm")
		}
	}
	require.NotZero(t, pid)

	from := time.Now()
	require.NoError(t, helper.Process.Kill())
	_ = helper.Wait()
	ws, at := reap(t, pid)
	requireCleanExit(t, pid, ws, from, at, exitBound)
}

// shParent runs the sidecar under a throwaway sh that only waits for it, with the test
// holding the sidecar's stdin and stdout: when sh dies, nothing closes the sidecar's
// pipes, so only --parent-pid can tell it its parent is gone. watch passes sh's pid as
// --parent-pid.
func shParent(t *testing.T, watch bool) (sh *exec.Cmd, pid int, stdin io.WriteCloser, stdout *bufio.Reader) {
	t.Helper()
	// An asynchronous command of a non-interactive sh reads /dev/null unless told
	// otherwise: hand it the real stdin through fd 3.
	script := `exec 3<&0; "$0" <&3 3<&- & echo $!; wait`
	if watch {
		script = `exec 3<&0; "$0" --parent-pid $$ <&3 3<&- & echo $!; wait`
	}
	sh = exec.Command("sh", "-c", script, binary)
	sh.Stderr = os.Stderr
	// Pipes of our own, not exec's: Wait closes the pipes exec made, which would close the
	// sidecar's stdin when sh is reaped.
	inR, inW, err := os.Pipe()
	require.NoError(t, err)
	outR, outW, err := os.Pipe()
	require.NoError(t, err)
	sh.Stdin, sh.Stdout = inR, outW
	require.NoError(t, sh.Start())
	inR.Close()
	outW.Close()
	t.Cleanup(func() { outR.Close() })
	stdin, stdout = inW, bufio.NewReader(outR)
	line, err := stdout.ReadString('\n')
	require.NoError(t, err)
	pid, err = strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = sh.Process.Kill()
		_ = sh.Wait()
	})
	got := roundTrip(t, stdin, stdout, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1"}}`)
	require.Contains(t, got, `"protocolVersion":"1"`)
	return sh, pid, stdin, stdout
}

// roundTrip writes one request line and returns the next line (these sidecars have no
// channels, so nothing else is written).
func roundTrip(t *testing.T, w io.Writer, r *bufio.Reader, line string) string {
	t.Helper()
	_, err := io.WriteString(w, line+"\n")
	require.NoError(t, err)
	type read struct {
		line string
		err  error
	}
	done := make(chan read, 1)
	go func() {
		l, err := r.ReadString('\n')
		done <- read{l, err}
	}()
	select {
	case got := <-done:
		require.NoError(t, got.err)
		return got.line
	case <-time.After(testTimeout):
		t.Fatalf("no answer to %s", line)
		panic("unreachable")
	}
}

// --parent-pid: when the parent dies and nothing closes the sidecar's pipes (a
// grandchild holds them, or the host hands them on), the watchdog still ends the sidecar.
func TestParentPIDWatchdog(t *testing.T) {
	subreaper(t)
	t.Run("parent SIGKILLed while its pipes stay open: exits promptly", func(t *testing.T) {
		sh, pid, _, _ := shParent(t, true)
		from := time.Now()
		require.NoError(t, sh.Process.Kill())
		_ = sh.Wait()
		ws, at := reap(t, pid)
		requireCleanExit(t, pid, ws, from, at, exitBound)
	})
	t.Run("without the watchdog the orphan keeps serving until stdin closes", func(t *testing.T) {
		sh, pid, stdin, stdout := shParent(t, false)
		require.NoError(t, sh.Process.Kill())
		_ = sh.Wait()
		for i := range 3 { // its parent is dead and reaped; it still answers
			got := roundTrip(t, stdin, stdout, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"channel.list"}`, i+2))
			require.Contains(t, got, `"channels":[]`)
		}
		from := time.Now()
		require.NoError(t, stdin.Close())
		ws, at := reap(t, pid)
		requireCleanExit(t, pid, ws, from, at, exitBound)
	})
	t.Run("parent SIGKILLed while the sidecar's stdout is blocked: exits promptly", func(t *testing.T) {
		sh, pid, stdin, stdout := shParent(t, true)
		for i := range 5 { // store channels: their applies need no answer from the host
			got := roundTrip(t, stdin, stdout, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"channel.open","params":{"channel":"w%d","topic":"s"}}`, i+2, i))
			require.Contains(t, got, `"localRevision":"0"`)
		}
		data := strings.Repeat("d", 64<<10)
		go func() { // nobody reads the sidecar's stdout from here on
			for i := range 3 {
				if _, err := fmt.Fprintf(stdin, `{"jsonrpc":"2.0","id":"set-%d","method":"state.set","params":{"topic":"s","data":%q}}`+"\n", i, data); err != nil {
					return
				}
			}
		}()
		waitBlockedOnStdout(t, pid)
		from := time.Now()
		require.NoError(t, sh.Process.Kill())
		_ = sh.Wait()
		ws, at := reap(t, pid)
		requireCleanExit(t, pid, ws, from, at, exitBound)
	})
	t.Run("a watched pid that is not the parent", func(t *testing.T) {
		other := exec.Command("sleep", "60")
		require.NoError(t, other.Start())
		c, err := sidecar.Start(context.Background(), sidecar.Options{Path: binary, Args: []string{"--parent-pid", strconv.Itoa(other.Process.Pid)}, Stderr: os.Stderr})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(5 * time.Second) })
		call(t, c, "initialize", map[string]string{"protocolVersion": "1"})
		require.NoError(t, other.Process.Kill())
		_ = other.Wait() // reaped: its pid no longer exists
		from := time.Now()
		select {
		case <-c.Exited():
		case <-time.After(testTimeout):
			t.Fatal("the sidecar outlived the process it watched")
		}
		took := time.Since(from)
		t.Logf("exited %s after the watched process died", took)
		require.Equal(t, 0, c.ExitCode())
		require.Less(t, took, exitBound)
	})
}

// stdin closes (the host closed it, or died) while getSnapshot and apply calls are in
// flight: every engine stops and the sidecar exits 0 within 200 ms.
func TestExitsOnEOFWithCallsInFlight(t *testing.T) {
	host := newFakeHost()
	host.set("doc", "1", `1`)
	host.set("other", "1", `1`)
	c := start(t, host)
	for i := range 10 {
		call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("d", i), "topic": "doc", "source": "host"})
		call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("o", i), "topic": "other", "source": "channel"})
	}
	host.mu.Lock()
	host.hang = true // getSnapshot never answered
	fetches := host.fetches["doc"] + host.fetches["other"]
	host.mu.Unlock()
	call(t, c, "invalidate", map[string]string{"topic": "doc", "revision": "2"})
	for i := range 10 {
		call(t, c, "invalidate", map[string]string{"topic": "other", "revision": "2", "channel": fmt.Sprint("o", i)})
	}
	host.waitFor(t, "getSnapshot calls in flight", func() bool { return host.fetches["doc"]+host.fetches["other"] >= fetches+11 })
	from := time.Now()
	go func() { _ = c.Close(testTimeout) }()
	select {
	case <-c.Exited():
	case <-time.After(testTimeout):
		t.Fatal("sidecar did not exit")
	}
	took := time.Since(from)
	t.Logf("exited %s after stdin closed with 11 calls in flight", took)
	require.Equal(t, 0, c.ExitCode())
	require.Less(t, took, exitBound)
}

// --- Slow host ---

// rawHost speaks to a sidecar over raw pipes, with a reader that can stop reading the
// sidecar's stdout. Its answers to the sidecar's calls go through a queue to a writer of
// their own, so the reader never blocks on a write (a host must read and write
// independently, or a full pipe each way deadlocks any stdio protocol).
type rawHost struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pid   int

	wmu sync.Mutex // one message at a time on stdin

	mu        sync.Mutex
	paused    bool
	resume    chan struct{}
	rev       int             // host topic "doc": current revision
	data      json.RawMessage // and its data
	answered  map[string]bool // ids of our requests that were answered
	applied   map[string]int  // last revision applied by channel
	queue     [][]byte        // answers waiting for the answer writer
	changed   chan struct{}
	readDone  chan struct{}
	queueCond *sync.Cond
	closed    bool
}

func startRawHost(t *testing.T, path string, args ...string) *rawHost {
	t.Helper()
	h := &rawHost{t: t, answered: map[string]bool{}, applied: map[string]int{}, changed: make(chan struct{}), readDone: make(chan struct{}), rev: 1, data: json.RawMessage(`1`)}
	h.queueCond = sync.NewCond(&h.mu)
	h.cmd = exec.Command(path, args...)
	h.cmd.Stderr = os.Stderr
	var err error
	h.stdin, err = h.cmd.StdinPipe()
	require.NoError(t, err)
	out, err := h.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, h.cmd.Start())
	h.pid = h.cmd.Process.Pid
	go h.read(bufio.NewReaderSize(out, 1<<16))
	go h.answerLoop()
	t.Cleanup(func() {
		h.setPaused(false)
		_ = h.stdin.Close()
		_ = h.cmd.Process.Kill()
		<-h.readDone
		_ = h.cmd.Wait()
		h.mu.Lock()
		h.closed = true
		h.queueCond.Broadcast()
		h.mu.Unlock()
	})
	return h
}

func (h *rawHost) setPaused(paused bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if paused && !h.paused {
		h.paused, h.resume = true, make(chan struct{})
	} else if !paused && h.paused {
		h.paused = false
		close(h.resume)
	}
}

func (h *rawHost) read(r *bufio.Reader) {
	defer close(h.readDone)
	for {
		h.mu.Lock()
		paused, resume := h.paused, h.resume
		h.mu.Unlock()
		if paused {
			<-resume
		}
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Channel  string `json:"channel"`
				Revision string `json:"revision"`
			} `json:"params"`
		}
		if json.Unmarshal(line, &msg) != nil {
			h.t.Errorf("the sidecar wrote a line that is not JSON: %.200s", line)
			continue
		}
		h.mu.Lock()
		switch msg.Method {
		case "getSnapshot":
			answer, _ := json.Marshal(map[string]any{"revision": strconv.Itoa(h.rev), "data": h.data})
			h.queue = append(h.queue, fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, answer))
			h.queueCond.Signal()
		case "apply":
			rev, _ := strconv.Atoi(msg.Params.Revision)
			h.applied[msg.Params.Channel] = rev
			h.queue = append(h.queue, fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":true}`, msg.ID))
			h.queueCond.Signal()
		case "":
			h.answered[string(msg.ID)] = true
		}
		close(h.changed)
		h.changed = make(chan struct{})
		h.mu.Unlock()
	}
}

func (h *rawHost) answerLoop() {
	for {
		h.mu.Lock()
		for len(h.queue) == 0 && !h.closed {
			h.queueCond.Wait()
		}
		if h.closed {
			h.mu.Unlock()
			return
		}
		next := h.queue[0]
		h.queue = h.queue[1:]
		h.mu.Unlock()
		if h.send(next) != nil {
			return
		}
	}
}

func (h *rawHost) send(line []byte) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	_, err := h.stdin.Write(append(line, '\n'))
	return err
}

// waitStdoutBlocked waits until a thread of the sidecar is blocked in write(2) on its
// stdout (fd 1), as /proc/PID/task/TID/syscall shows: from then on, the host's not
// reading holds the sidecar's output back.
func (h *rawHost) waitStdoutBlocked() {
	h.t.Helper()
	waitBlockedOnStdout(h.t, h.pid)
}

func waitBlockedOnStdout(t *testing.T, pid int) {
	t.Helper()
	nr := map[string]string{"amd64": "1", "arm64": "64", "386": "4", "arm": "4"}[runtime.GOARCH]
	if nr == "" {
		t.Skipf("write(2)'s syscall number on %s is not known to this test", runtime.GOARCH)
	}
	deadline := time.Now().Add(testTimeout)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
		for _, task := range tasks {
			if b, err := os.ReadFile(task); err == nil && strings.HasPrefix(string(b), nr+" 0x1 ") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no thread of the sidecar blocked writing its stdout within %v", testTimeout)
		}
		time.Sleep(time.Millisecond) // polling the kernel's view; nothing else to wait on
	}
}

// waitFor blocks until cond (run with h.mu held) holds, or fails the test.
func (h *rawHost) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.After(testTimeout)
	for {
		h.mu.Lock()
		ok, changed := cond(), h.changed
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A host that stops reading stdout while it keeps writing: the sidecar's writes block,
// its reader stops reading stdin in turn (backpressure), and its memory stays bounded;
// once the host reads again, every request is answered and every channel converges.
func TestSlowHostBackpressureKeepsMemoryBounded(t *testing.T) {
	const channels = 20
	h := startRawHost(t, plainBinary(t), "--call-timeout", "30s")
	h.mu.Lock()
	h.data = json.RawMessage(`"` + strings.Repeat("d", 64<<10) + `"`)
	h.mu.Unlock()
	for i := range channels {
		require.NoError(t, h.send(fmt.Appendf(nil, `{"jsonrpc":"2.0","id":"open-%d","method":"channel.open","params":{"channel":"w%d","topic":"doc","source":"host"}}`, i, i)))
	}
	h.waitFor("every channel open", func() bool {
		for i := range channels {
			if !h.answered[fmt.Sprintf(`"open-%d"`, i)] {
				return false
			}
		}
		return true
	})
	base := rssKiB(t, h.pid)

	// Stop reading, then write until the sidecar stops reading too: invalidations (each
	// needs a getSnapshot and 50 applies of 64 KiB), state.set, channel.list (answers of
	// several KiB) and garbage (error answers).
	h.setPaused(true)
	const messages = 8000
	var sent atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		for i := range messages {
			var line []byte
			switch i % 4 {
			case 0:
				h.mu.Lock()
				h.rev++
				rev := h.rev
				h.mu.Unlock()
				line = fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"invalidate","params":{"topic":"doc","revision":"%d"}}`, rev)
			case 1:
				line = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":"set-%d","method":"state.set","params":{"topic":"s","data":{"n":%d}}}`, i, i)
			case 2:
				line = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":"list-%d","method":"channel.list"}`, i)
			case 3:
				line = []byte("this is not json")
			}
			if err := h.send(line); err != nil {
				writerDone <- err
				return
			}
			sent.Add(1)
		}
		writerDone <- nil
	}()

	// Sample the sidecar's memory while the host does not read: from the moment its
	// stdout is full, for a second, or until the writer got everything in (which would
	// mean the sidecar buffers without bound).
	h.waitStdoutBlocked()
	peak := base
	finishedEarly := false
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && !finishedEarly; {
		select {
		case err := <-writerDone:
			require.NoError(t, err)
			finishedEarly = true
		case <-time.After(20 * time.Millisecond):
		}
		peak = max(peak, rssKiB(t, h.pid))
	}
	stalledAt := sent.Load()
	t.Logf("host not reading: the sidecar took %d of %d messages, then pushed back; resident memory %d KiB before, peak %d KiB", stalledAt, messages, base, peak)
	require.False(t, finishedEarly, "the sidecar took all %d messages while nobody read its output: it buffers without bound", messages)
	require.Less(t, peak-base, 16<<10, "resident memory grew by %d KiB while the host did not read", peak-base)

	// Read again: everything flows, every request is answered, every channel converges.
	h.setPaused(false)
	select {
	case err := <-writerDone:
		require.NoError(t, err)
	case <-time.After(testTimeout):
		t.Fatalf("the host's writes did not resume within %v of reading again (%d of %d sent)", testTimeout, sent.Load(), messages)
	}
	h.mu.Lock()
	final := h.rev
	h.mu.Unlock()
	require.NoError(t, h.send([]byte(`{"jsonrpc":"2.0","id":"last","method":"channel.list"}`)))
	h.waitFor("every request answered and every channel at the final revision", func() bool {
		for i := 0; i < messages; i++ {
			switch i % 4 {
			case 1:
				if !h.answered[fmt.Sprintf(`"set-%d"`, i)] {
					return false
				}
			case 2:
				if !h.answered[fmt.Sprintf(`"list-%d"`, i)] {
					return false
				}
			}
		}
		for i := range channels {
			if h.applied[fmt.Sprint("w", i)] != final {
				return false
			}
		}
		return h.answered[`"last"`]
	})
	t.Logf("after reading again: resident memory %d KiB", rssKiB(t, h.pid))
	require.NoError(t, h.stdin.Close())
	select {
	case <-h.readDone:
	case <-time.After(testTimeout):
		t.Fatal("the sidecar did not exit after stdin closed")
	}
	require.NoError(t, h.cmd.Wait())
}

// A signal (or the --parent-pid watchdog) must end the sidecar within 200 ms even while
// its writes are blocked on a host that does not read stdout.
func TestSIGTERMExitsWhileStdoutIsBlocked(t *testing.T) {
	h := startRawHost(t, binary)
	for i := range 10 { // store channels: their applies need no answer from the host
		require.NoError(t, h.send(fmt.Appendf(nil, `{"jsonrpc":"2.0","id":"open-%d","method":"channel.open","params":{"channel":"w%d","topic":"s"}}`, i, i)))
	}
	h.waitFor("every channel open", func() bool { return len(h.answered) == 10 })
	h.setPaused(true)
	data := strings.Repeat("d", 64<<10)
	go func() { // 3 writes × 10 applies of 64 KiB: far more than a pipe holds
		for i := range 3 {
			if h.send(fmt.Appendf(nil, `{"jsonrpc":"2.0","id":"set-%d","method":"state.set","params":{"topic":"s","data":%q}}`, i, data)) != nil {
				return // the sidecar is gone: the test is over
			}
		}
	}()
	h.waitStdoutBlocked()
	from := time.Now()
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGTERM))
	exited := make(chan error, 1)
	go func() { exited <- h.cmd.Wait() }()
	select {
	case err := <-exited:
		took := time.Since(from)
		t.Logf("exited %s after SIGTERM with its stdout blocked (%v)", took, err)
		require.NoError(t, err, "exit status")
		require.Less(t, took, exitBound)
	case <-time.After(testTimeout):
		t.Fatalf("the sidecar did not exit within %v of SIGTERM while its stdout was blocked", testTimeout)
	}
}

// --- Limits ---

// --max-in-flight bounds the requests that wait on the host. One over the bound is a clear
// -32003 that leaves nothing behind; a close is never refused (it needs no host answer,
// and a refused close would leave an engine running that the host believes gone).
func TestInFlightLimit(t *testing.T) {
	host := newFakeHost()
	host.set("doc", "1", `1`)
	host.hold = make(chan struct{}) // getSnapshot waits until released
	c := start(t, host, "--max-in-flight", "3", "--call-timeout", "30s")
	opened := make(chan error, 3)
	for i := range 3 {
		go func() {
			opened <- c.Call(testContext(t), "channel.open", map[string]any{"channel": fmt.Sprint("w", i), "topic": "doc", "source": "host"}, nil)
		}()
	}
	host.waitFor(t, "the shared getSnapshot in flight", func() bool { return host.fetches["doc"] == 1 })
	var list struct {
		Channels []struct {
			Channel string `json:"channel"`
			State   string `json:"state"`
		} `json:"channels"`
	}
	for range 100 { // the three opens reach the sidecar in any order; wait until all did
		require.NoError(t, json.Unmarshal(call(t, c, "channel.list", nil), &list))
		if len(list.Channels) == 3 {
			break
		}
	}
	require.Len(t, list.Channels, 3, "channels registered: %+v", list.Channels)

	e := callErr(t, c, "channel.open", map[string]any{"channel": "w3", "topic": "doc", "source": "host"})
	require.EqualValues(t, -32003, e.Code, "%s", e.Message)
	require.Contains(t, e.Message, "--max-in-flight")
	require.NoError(t, json.Unmarshal(call(t, c, "channel.list", nil), &list))
	require.Len(t, list.Channels, 3, "a refused open must leave no channel behind: %+v", list.Channels)
	e = callErr(t, c, "channel.refresh", map[string]any{"channel": "w0"})
	require.EqualValues(t, -32003, e.Code, "%s", e.Message)

	// Close while the group is full: it happens, and the pending open learns of it.
	res := call(t, c, "channel.close", map[string]string{"channel": "w0"})
	require.JSONEq(t, `{"channel":"w0","localRevision":"0"}`, string(res))
	require.NoError(t, json.Unmarshal(call(t, c, "channel.list", nil), &list))
	require.Len(t, list.Channels, 2)

	close(host.hold)
	codes := map[int64]int{}
	for range 3 {
		select {
		case err := <-opened:
			if err != nil {
				var rpcErr *sidecar.RPCError
				require.ErrorAs(t, err, &rpcErr)
				codes[rpcErr.Code]++
			} else {
				codes[0]++
			}
		case <-time.After(testTimeout):
			t.Fatal("the held opens did not finish once released")
		}
	}
	require.Equal(t, map[int64]int{0: 2, -32001: 1}, codes, "open answers: 2 opened, w0 closed while opening")
	call(t, c, "channel.open", map[string]any{"channel": "w3", "topic": "doc", "source": "host"})
	require.NoError(t, json.Unmarshal(call(t, c, "channel.list", nil), &list))
	require.Len(t, list.Channels, 3)
}

// errorAnswers returns the error answers the host saw, in order (frames "<- ").
func errorAnswers(host *fakeHost) []string {
	var out []string
	for _, f := range host.frames.all() {
		if strings.HasPrefix(f, "<- ") && strings.Contains(f, `"error"`) && !strings.Contains(f, `"method"`) {
			out = append(out, f)
		}
	}
	return out
}

// A message over --max-message-bytes is answered -32600 with a short message, skipped
// without being kept, and the next message is served. NDJSON only: LSP framing cannot
// skip a frame by its declared length (TestLSPContentLengthOverTheLimitIsFatal).
func TestOversizedMessagesAreSkipped(t *testing.T) {
	for _, framing := range []string{"ndjson"} {
		t.Run(framing, func(t *testing.T) {
			host := newFakeHost()
			c := start(t, host, "--framing", framing, "--max-message-bytes", "4096")
			big := `{"jsonrpc":"2.0","id":1,"method":"state.set","params":{"topic":"t","data":"` + strings.Repeat("x", 1<<20) + `"}}`
			if framing == "lsp" {
				require.NoError(t, c.WriteRaw(fmt.Appendf(nil, "Content-Length: %d\r\n\r\n%s", len(big), big)))
			} else {
				require.NoError(t, c.WriteRaw([]byte(big+"\n")))
			}
			res := call(t, c, "state.set", map[string]any{"topic": "t", "data": "small"})
			require.JSONEq(t, `{"topic":"t","revision":"1"}`, string(res), "the message after the oversized one")
			answers := errorAnswers(host)
			require.Len(t, answers, 1, "answers: %v", answers)
			require.Contains(t, answers[0], `"id":null`)
			require.Contains(t, answers[0], `"code":-32600`)
			require.Contains(t, answers[0], "--max-message-bytes")
			require.Less(t, len(answers[0]), 300, "the error echoes the oversized input: %.400s", answers[0])
		})
	}
}

// A 64 MiB line is skipped as it streams in, never held whole: the sidecar's memory
// stays near its idle size.
func TestOversizedLineIsNotBuffered(t *testing.T) {
	host := newFakeHost()
	c := startPlain(t, host, "--max-message-bytes", "1048576")
	call(t, c, "initialize", map[string]string{"protocolVersion": "1"})
	before := rssKiB(t, c.Pid())
	chunk := []byte(strings.Repeat("y", 1<<20))
	require.NoError(t, c.WriteRaw([]byte(`{"jsonrpc":"2.0","id":1,"method":"state.set","params":{"topic":"t","data":"`)))
	for range 64 {
		require.NoError(t, c.WriteRaw(chunk))
	}
	require.NoError(t, c.WriteRaw([]byte("\"}}\n")))
	call(t, c, "channel.list", nil) // answered after the oversized line was skipped
	after := rssKiB(t, c.Pid())
	t.Logf("resident memory: %d KiB idle, %d KiB after a 64 MiB line", before, after)
	require.Less(t, after-before, 8<<10, "a 64 MiB line over a 1 MiB limit grew resident memory by %d KiB", after-before)
	answers := errorAnswers(host)
	require.Len(t, answers, 1)
	require.Contains(t, answers[0], `"code":-32600`)
}

// --max-channels: the channel over the limit is a clear -32003 that leaves nothing
// behind; closing one makes room again.
func TestTooManyChannels(t *testing.T) {
	c := start(t, newFakeHost(), "--max-channels", "5")
	for i := range 5 {
		call(t, c, "channel.open", map[string]any{"channel": fmt.Sprint("w", i), "topic": "t"})
	}
	e := callErr(t, c, "channel.open", map[string]any{"channel": "w5", "topic": "t"})
	require.EqualValues(t, -32003, e.Code)
	require.Contains(t, e.Message, "--max-channels")
	var list struct {
		Channels []json.RawMessage `json:"channels"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "channel.list", nil), &list))
	require.Len(t, list.Channels, 5)
	call(t, c, "channel.close", map[string]string{"channel": "w0"})
	call(t, c, "channel.open", map[string]any{"channel": "w5", "topic": "t"})
	var init struct {
		Capabilities struct {
			MaxChannels int `json:"maxChannels"`
		} `json:"capabilities"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "initialize", map[string]string{"protocolVersion": "1"}), &init))
	require.Equal(t, 5, init.Capabilities.MaxChannels, "initialize reports the limit")
}

// JSON nested deeper than encoding/json's 10,000 levels is a parse error (-32700) and
// the sidecar goes on; deep data within that is stored and handed out byte for byte.
func TestTooDeepJSON(t *testing.T) {
	host := newFakeHost()
	c := start(t, host)
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	require.NoError(t, c.WriteRaw([]byte(`{"jsonrpc":"2.0","id":1,"method":"state.set","params":{"topic":"t","data":`+deep(100000)+"}}\n")))
	res := call(t, c, "state.set", map[string]any{"topic": "t", "data": json.RawMessage(deep(5000))})
	require.JSONEq(t, `{"topic":"t","revision":"1"}`, string(res))
	answers := errorAnswers(host)
	require.Len(t, answers, 1, "answers: %v", answers)
	require.Contains(t, answers[0], `"code":-32700`)
	require.Contains(t, answers[0], "depth")
	require.Less(t, len(answers[0]), 300)

	var got struct {
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "state.get", map[string]string{"topic": "t"}), &got))
	require.Equal(t, deep(5000), string(got.Data))
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "t"})
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Equal(t, []string{"1"}, host.applied["w"], "the deep data was applied")
}

// Store data over --max-store-bytes is a clear -32003 naming the sizes; nothing changes.
func TestTooLargeStoreData(t *testing.T) {
	c := start(t, newFakeHost(), "--max-store-bytes", "1024")
	call(t, c, "state.set", map[string]any{"topic": "t", "data": "fits"})
	e := callErr(t, c, "state.set", map[string]any{"topic": "t", "data": strings.Repeat("z", 4096)})
	require.EqualValues(t, -32003, e.Code)
	require.Contains(t, e.Message, "--max-store-bytes")
	require.Less(t, len(e.Message), 200, "the error echoes the data: %.300s", e.Message)
	res := call(t, c, "state.get", map[string]string{"topic": "t"})
	require.Contains(t, string(res), `"revision":"1"`)
	require.Contains(t, string(res), `"data":"fits"`)
}

// --- Store: a full disk ---
//
// (A read-only remount is refused while the sidecar holds its lock file open for writing;
// store/file_test.go covers read-only and vanished folders at the package level.)

// tinyDisk mounts a 64 KiB tmpfs for the test, or skips when this process may not mount.
func tinyDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a 64 KiB tmpfs to fill up (needs root or CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func dirListing(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		out[e.Name()] = info.Mode().String()
	}
	return out
}

// The store's disk fills up: each failed state.set is a clear
// -32009 naming the file, nothing changes (neither the store, nor the file, nor the
// channels: no apply of a write that was not saved), no temporary file is left, the
// sidecar keeps serving, and writes work again once there is room.
func TestStoreOnAFullDisk(t *testing.T) {
	dir := tinyDisk(t)
	path := filepath.Join(dir, "state.json")
	host := newFakeHost()
	c := start(t, host, "--store-file", path)
	call(t, c, "state.set", map[string]any{"topic": "t", "data": "one"})
	call(t, c, "state.set", map[string]any{"topic": "t", "data": "two"})
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "t"})
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	listing := dirListing(t, dir)
	require.Equal(t, map[string]string{"state.json": "-rw-------", "state.json.lock": "-rw-------"}, listing)

	requireRefused := func(what string, data any, hint string) {
		t.Helper()
		e := callErr(t, c, "state.set", map[string]any{"topic": "t", "data": data})
		require.EqualValues(t, -32009, e.Code, "%s: %s", what, e.Message)
		require.Contains(t, e.Message, path, what)
		require.Contains(t, e.Message, "nothing changed", what)
		require.Contains(t, e.Message, hint, what)
		require.Less(t, len(e.Message), 600, "%s: the error echoes the data: %.800s", what, e.Message)
		after, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, before, after, "%s: the store file changed", what)
		require.Equal(t, listing, dirListing(t, dir), "%s: files left behind", what)
		got := call(t, c, "state.get", map[string]string{"topic": "t"})
		require.Contains(t, string(got), `"revision":"2"`, what)
		require.Contains(t, string(got), `"data":"two"`, what)
	}

	// A write bigger than the disk.
	requireRefused("a write larger than the disk", strings.Repeat("b", 100<<10), "no space left on device")

	// A full disk: even a small write fails.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	require.NoError(t, err)
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break // ENOSPC: the disk is full
		}
	}
	require.NoError(t, f.Close())
	listing = dirListing(t, dir)
	requireRefused("a small write on a full disk", "three", "no space left on device")
	require.NoError(t, os.Remove(filler))
	listing = dirListing(t, dir)

	// Room again: the write works, at the next revision; the channel saw only saved writes.
	res := call(t, c, "state.set", map[string]any{"topic": "t", "data": "three"})
	require.JSONEq(t, `{"topic":"t","revision":"3"}`, string(res))
	host.waitFor(t, "the channel applied revision 3", func() bool { return host.lastApplied("w") == "3" })
	host.mu.Lock()
	require.Equal(t, []string{"2", "3"}, host.applied["w"], "applies: only saved writes")
	host.mu.Unlock()
	require.NoError(t, c.Close(5*time.Second))
	require.Equal(t, map[string]string{"state.json": "-rw-------", "state.json.lock": "-rw-------"}, dirListing(t, dir))
}

// The store file cannot even be created on a full disk: a clear error on stderr, exit 1,
// nothing left behind.
func TestStoreFileOnAFullDiskAtStart(t *testing.T) {
	dir := tinyDisk(t)
	filler, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	for {
		if _, err := filler.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	require.NoError(t, filler.Close())
	path := filepath.Join(dir, "state.json")
	cmd := exec.Command(binary, "--store-file", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, "want exit 1, got %v", err)
	require.Equal(t, 1, exitErr.ExitCode())
	require.Empty(t, out, "stdout carries protocol only")
	require.Contains(t, stderr.String(), path)
	require.Contains(t, stderr.String(), "no space left on device")
	t.Logf("stderr: %s", stderr.String())
	listing := dirListing(t, dir)
	delete(listing, "filler")
	delete(listing, "state.json.lock") // the lock is taken before the store is created
	require.Empty(t, listing, "files left behind on a disk where the store could not be created")
}

// The store's disk is read-only when the sidecar starts (mounted so after an earlier run):
// a clear error naming the file, exit 1, the store untouched and usable once the disk is
// writable again. (A disk that turns read-only while a sidecar runs cannot be made here:
// the kernel refuses to remount a filesystem read-only while the sidecar holds its lock
// file open for writing.)
func TestStoreFileOnAReadOnlyDiskAtStart(t *testing.T) {
	dir := tinyDisk(t)
	path := filepath.Join(dir, "state.json")
	c := start(t, newFakeHost(), "--store-file", path)
	call(t, c, "state.set", map[string]any{"topic": "t", "data": "one"})
	require.NoError(t, c.Close(5*time.Second))
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput()
	require.NoError(t, err, "remount ro: %s", out)
	cmd := exec.Command(binary, "--store-file", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdin = strings.NewReader("")
	stdout, err := cmd.Output()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, "want exit 1, got %v", err)
	require.Equal(t, 1, exitErr.ExitCode())
	require.Empty(t, stdout, "stdout carries protocol only")
	require.Contains(t, stderr.String(), path)
	require.Contains(t, stderr.String(), "read-only file system")
	t.Logf("stderr: %s", stderr.String())
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, before, after)

	out, err = exec.Command("mount", "-o", "remount,rw", dir).CombinedOutput()
	require.NoError(t, err, "remount rw: %s", out)
	c = start(t, newFakeHost(), "--store-file", path)
	res := call(t, c, "state.get", map[string]string{"topic": "t"})
	require.Contains(t, string(res), `"revision":"1"`)
	require.Contains(t, string(res), `"data":"one"`)
	require.NoError(t, c.Close(5*time.Second))
}
