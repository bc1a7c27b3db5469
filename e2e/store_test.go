package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/sidecar"
)

// The embedded store over the real binary: state.set / state.get, fan-out to store
// channels, compare-and-set, limits, --store-file across restarts and kill -9.

type storeGet struct {
	Topic    string          `json:"topic"`
	Revision string          `json:"revision"`
	Epoch    string          `json:"epoch"`
	Data     json.RawMessage `json:"data"`
}

func stateSet(t *testing.T, c *sidecar.Client, topic string, data any) string {
	t.Helper()
	var res struct {
		Topic    string `json:"topic"`
		Revision string `json:"revision"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "state.set", map[string]any{"topic": topic, "data": data}), &res))
	require.Equal(t, topic, res.Topic)
	return res.Revision
}

func stateGet(t *testing.T, c *sidecar.Client, topic string) storeGet {
	t.Helper()
	var res storeGet
	require.NoError(t, json.Unmarshal(call(t, c, "state.get", map[string]any{"topic": topic}), &res))
	return res
}

// recordApplies keeps the data of every apply, by channel, next to host.applied.
func recordApplies(host *fakeHost) map[string][]applyParams {
	got := map[string][]applyParams{}
	host.onApply = func(p applyParams) { got[p.Channel] = append(got[p.Channel], p) } // runs with host.mu held
	return got
}

func TestStoreSetFansOutToEveryChannelOfTheTopic(t *testing.T) {
	host := newFakeHost()
	applies := recordApplies(host)
	c := start(t, host)
	require.Equal(t, "1", stateSet(t, c, "doc", map[string]string{"v": "one"}))
	windows := []string{"w1", "w2", "w3", "w4"}
	for _, w := range windows {
		var res struct {
			LocalRevision string `json:"localRevision"`
			Source        string `json:"source"`
		}
		require.NoError(t, json.Unmarshal(call(t, c, "channel.open", map[string]any{"channel": w, "topic": "doc"}), &res))
		require.Equal(t, "1", res.LocalRevision)
		require.Equal(t, "store", res.Source, "store is the default source")
	}
	call(t, c, "channel.open", map[string]any{"channel": "elsewhere", "topic": "other-topic", "source": "store"})

	// w1's window writes; every channel of the topic gets it, w1 included: state.set names
	// no channel, and w1's engine drops nothing it has not applied.
	require.Equal(t, "2", stateSet(t, c, "doc", map[string]string{"v": "two", "by": "w1"}))
	host.waitFor(t, "every doc channel applied revision 2", func() bool {
		for _, w := range windows {
			if host.lastApplied(w) != "2" {
				return false
			}
		}
		return true
	})
	epoch := stateGet(t, c, "doc").Epoch
	require.NotEmpty(t, epoch)
	host.mu.Lock()
	defer host.mu.Unlock()
	for _, w := range windows {
		require.Equal(t, []string{"1", "2"}, host.applied[w], w)
		last := applies[w][len(applies[w])-1]
		require.JSONEq(t, `{"v":"two","by":"w1"}`, string(last.Data), w)
		require.Equal(t, epoch, last.Epoch, "applies carry the store's epoch")
		require.Equal(t, "doc", last.Topic)
	}
	require.Empty(t, host.applied["elsewhere"], "another topic's channel hears nothing")
	require.Empty(t, host.fetches, "the store answers snapshots itself: no getSnapshot reaches the host")
}

func TestStoreLateJoinGetsTheLatestRevisionAtOnce(t *testing.T) {
	host := newFakeHost()
	applies := recordApplies(host)
	c := start(t, host)
	for i := 1; i <= 5; i++ {
		require.Equal(t, strconv.Itoa(i), stateSet(t, c, "settings", map[string]int{"n": i}))
	}
	open := call(t, c, "channel.open", map[string]any{"channel": "late", "topic": "settings"})
	require.JSONEq(t, `{"channel":"late","topic":"settings","source":"store","localRevision":"5"}`, string(open))
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Equal(t, []string{"5"}, host.applied["late"], "open answers after one apply of the latest revision, not a replay")
	require.JSONEq(t, `{"n":5}`, string(applies["late"][0].Data))
	require.Empty(t, host.fetches)
}

// A channel on a store topic that was never set: open answers localRevision "0" at once,
// nothing is applied (no null is ever pushed), and the first state.set arrives as
// revision 1.
func TestStoreChannelOnANeverSetTopicWaitsForTheFirstSet(t *testing.T) {
	host := newFakeHost()
	applies := recordApplies(host)
	c := start(t, host)

	got := call(t, c, "state.get", map[string]any{"topic": "fresh"})
	require.JSONEq(t, `{"topic":"fresh","revision":"0","epoch":"`+stateGet(t, c, "fresh").Epoch+`"}`, string(got), "no data field, not data: null")

	open := call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "fresh"})
	require.JSONEq(t, `{"channel":"w","topic":"fresh","source":"store","localRevision":"0"}`, string(open))
	refreshed := call(t, c, "channel.refresh", map[string]any{"channel": "w"})
	require.JSONEq(t, `{"channel":"w","localRevision":"0"}`, string(refreshed), "a refresh with nothing stored applies nothing")
	var st struct {
		State         string `json:"state"`
		LocalRevision string `json:"localRevision"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "channel.status", map[string]any{"channel": "w"}), &st))
	require.Equal(t, "running", st.State)
	require.Equal(t, "0", st.LocalRevision)
	host.mu.Lock()
	require.Empty(t, host.applied["w"])
	host.mu.Unlock()

	require.Equal(t, "1", stateSet(t, c, "fresh", []string{"first"}))
	host.waitFor(t, "w applied revision 1", func() bool { return host.lastApplied("w") == "1" })
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Equal(t, []string{"1"}, host.applied["w"])
	require.JSONEq(t, `["first"]`, string(applies["w"][0].Data))
	for _, f := range host.frames.all() {
		if strings.Contains(f, `"method":"apply"`) {
			require.NotContains(t, f, `"data":null`, "no null is ever pushed")
		}
	}
}

func TestStoreKeepsDataAsSent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c := start(t, newFakeHost(), "--store-file", path)
	spaced := `{"b":1, "a":[1,2.50,1e3], "b":"dup"}`
	require.NoError(t, c.WriteRaw([]byte(`{"jsonrpc":"2.0","id":"raw","method":"state.set","params":{"topic":"t","data":`+spaced+`}}`+"\n")))
	got := stateGet(t, c, "t") // handled after the state.set: same reading goroutine
	require.Equal(t, "1", got.Revision)
	require.Equal(t, `{"b":1,"a":[1,2.50,1e3],"b":"dup"}`, string(got.Data), "the same value: key order, numbers and duplicates kept, spaces dropped")
	file, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(file), `"data":`+spaced+`}`, "the file holds the bytes as sent")
}

func TestStoreCompareAndSetConflictOverTheWire(t *testing.T) {
	host := newFakeHost()
	c := start(t, host)
	call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "doc"})

	set := func(data any, expected string) (string, *sidecar.RPCError) {
		var res struct {
			Revision string `json:"revision"`
		}
		err := c.Call(testContext(t), "state.set", map[string]any{"topic": "doc", "data": data, "expectedRevision": expected}, &res)
		if err == nil {
			return res.Revision, nil
		}
		var rpcErr *sidecar.RPCError
		require.ErrorAs(t, err, &rpcErr)
		return "", rpcErr
	}
	rev, e := set("created", "0") // create if absent
	require.Nil(t, e)
	require.Equal(t, "1", rev)

	_, e = set("created again", "0")
	require.NotNil(t, e)
	require.EqualValues(t, -32005, e.Code)
	require.JSONEq(t, `{"currentRevision":"1"}`, string(e.Data))
	require.Contains(t, e.Message, "read it again (state.get), then retry the write")

	rev, e = set("updated", "1")
	require.Nil(t, e)
	require.Equal(t, "2", rev)
	for _, stale := range []string{"1", "7"} {
		_, e = set("lost", stale)
		require.NotNil(t, e)
		require.EqualValues(t, -32005, e.Code)
		require.JSONEq(t, `{"currentRevision":"2"}`, string(e.Data))
	}
	got := stateGet(t, c, "doc")
	require.Equal(t, "2", got.Revision)
	require.JSONEq(t, `"updated"`, string(got.Data))
	host.waitFor(t, "w applied revision 2", func() bool { return host.lastApplied("w") == "2" })
	call(t, c, "channel.list", nil)
	host.mu.Lock()
	defer host.mu.Unlock()
	require.Equal(t, []string{"1", "2"}, host.applied["w"], "a lost compare-and-set invalidates nothing")
}

func TestStoreDataOverTheLimitIsRefused(t *testing.T) {
	host := newFakeHost()
	c := start(t, host, "--max-store-bytes", "64")
	fits := strings.Repeat("x", 62) // 64 bytes with its quotes
	require.Equal(t, "1", stateSet(t, c, "t", fits))
	e := callErr(t, c, "state.set", map[string]any{"topic": "t", "data": fits + "y"})
	require.EqualValues(t, -32003, e.Code)
	require.JSONEq(t, `{"limit":64,"size":65}`, string(e.Data))
	require.Contains(t, e.Message, "--max-store-bytes")
	got := stateGet(t, c, "t")
	require.Equal(t, "1", got.Revision)
	require.Equal(t, `"`+fits+`"`, string(got.Data))
}

func TestStoreFileKeepsRevisionsAndEpochAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app-state.json")
	c := start(t, newFakeHost(), "--store-file", path)
	var init struct {
		Capabilities struct {
			Store string `json:"store"`
		} `json:"capabilities"`
	}
	require.NoError(t, json.Unmarshal(call(t, c, "initialize", map[string]string{"protocolVersion": "1"}), &init))
	require.Equal(t, "file", init.Capabilities.Store)
	for i := 1; i <= 3; i++ {
		require.Equal(t, strconv.Itoa(i), stateSet(t, c, "app-config", map[string]int{"n": i}))
	}
	epoch := stateGet(t, c, "app-config").Epoch
	require.NoError(t, c.Close(testTimeout))
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	for restart := range 2 {
		host := newFakeHost()
		applies := recordApplies(host)
		c = start(t, host, "--store-file", path)
		got := stateGet(t, c, "app-config")
		require.Equal(t, strconv.Itoa(3+restart), got.Revision, "restart %d", restart)
		require.JSONEq(t, fmt.Sprintf(`{"n":%d}`, 3+restart), string(got.Data))
		require.Equal(t, epoch, got.Epoch, "the file store's epoch survives restarts")
		call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "app-config"})
		require.Equal(t, strconv.Itoa(4+restart), stateSet(t, c, "app-config", map[string]int{"n": 4 + restart}))
		host.waitFor(t, "w applied the new revision", func() bool { return host.lastApplied("w") == strconv.Itoa(4+restart) })
		host.mu.Lock()
		require.Equal(t, epoch, applies["w"][0].Epoch)
		host.mu.Unlock()
		require.NoError(t, c.Close(testTimeout))
	}

	// Memory: each process is a new life of the store, with its own epoch.
	a, b := start(t, newFakeHost()), start(t, newFakeHost())
	stateSet(t, a, "t", 1)
	stateSet(t, b, "t", 1)
	ea, eb := stateGet(t, a, "t").Epoch, stateGet(t, b, "t").Epoch
	require.NotEmpty(t, ea)
	require.NotEqual(t, ea, eb)
}

// runSidecar runs the binary to its exit with nothing on stdin.
func runSidecar(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "the sidecar did not exit")
	if err != nil {
		var exitErr *exec.ExitError
		require.ErrorAs(t, err, &exitErr)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

func TestStoreFileThatCannotBeUsedStopsTheSidecar(t *testing.T) {
	dir := t.TempDir()
	t.Run("corrupt", func(t *testing.T) {
		path := filepath.Join(dir, "corrupt.json")
		corrupt := []byte(`{"format":"statesync-store","version":1,"epoch":"e","topics":{` + "\n" + `"t":{"revision":"3","da`)
		require.NoError(t, os.WriteFile(path, corrupt, 0o600))
		code, stdout, stderr := runSidecar(t, "--store-file", path)
		require.Equal(t, 1, code)
		require.Empty(t, stdout, "stdout carries protocol only")
		require.Contains(t, stderr, path)
		require.Contains(t, stderr, "is not a valid state-sync store")
		require.Contains(t, stderr, "move it away to start empty, or restore a backup")
		after, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, corrupt, after, "the file is left byte-identical")
	})
	t.Run("missing folder", func(t *testing.T) {
		path := filepath.Join(dir, "no-such-folder", "state.json")
		code, _, stderr := runSidecar(t, "--store-file", path)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, path)
		// Issue 13: say what to do, not which lock file could not be made.
		require.Contains(t, stderr, "the folder must exist")
		require.NotContains(t, stderr, ".lock")
		_, err := os.Stat(filepath.Dir(path))
		require.ErrorIs(t, err, os.ErrNotExist, "the folder is not created")
	})
	t.Run("byte order mark", func(t *testing.T) {
		path := filepath.Join(dir, "bom.json")
		withBOM := []byte("\xef\xbb\xbf" + `{"format":"statesync-store","version":1,"epoch":"e","topics":{}}`)
		require.NoError(t, os.WriteFile(path, withBOM, 0o600))
		code, _, stderr := runSidecar(t, "--store-file", path)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "byte order mark")
		after, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, withBOM, after, "the file is left byte-identical")
	})
	t.Run("in use by another sidecar", func(t *testing.T) {
		path := filepath.Join(dir, "shared.json")
		first := start(t, newFakeHost(), "--store-file", path)
		stateSet(t, first, "t", "first")
		code, _, stderr := runSidecar(t, "--store-file", path)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, path)
		require.Contains(t, stderr, "in use by another process")
		require.Equal(t, "2", stateSet(t, first, "t", "still serving"))
	})
}

// TestStoreFileSurvivesKill9 kills the sidecar (SIGKILL) in the middle of a stream of
// state.set requests from several goroutines, restarts it on the same file, and checks
// every acknowledged write: the stored revision is at least the last acknowledged one,
// and if equal the data is the acknowledged data; if later, it is data that was sent.
func TestStoreFileSurvivesKill9(t *testing.T) {
	const (
		rounds  = 6
		writers = 6
		topics  = 4
	)
	path := filepath.Join(t.TempDir(), "state.json")
	var (
		mu      sync.Mutex
		acked   = map[string]map[int]string{}  // topic → revision → data
		sent    = map[string]map[string]bool{} // topic → data sent (acknowledged or not)
		lastAck = map[string]int{}
		epoch   string
	)
	for i := range topics {
		acked[fmt.Sprint("topic-", i)] = map[int]string{}
		sent[fmt.Sprint("topic-", i)] = map[string]bool{}
	}
	verify := func(t *testing.T, c *sidecar.Client, round int) {
		t.Helper()
		for topic := range acked {
			got := stateGet(t, c, topic)
			if epoch == "" {
				epoch = got.Epoch
			}
			require.Equal(t, epoch, got.Epoch, "round %d: the epoch survives kill -9", round)
			rev := 0
			if got.Revision != "0" {
				var err error
				rev, err = strconv.Atoi(got.Revision)
				require.NoError(t, err)
			}
			mu.Lock()
			last, ackData, wasSent := lastAck[topic], acked[topic][lastAck[topic]], sent[topic][string(got.Data)]
			mu.Unlock()
			require.GreaterOrEqual(t, rev, last, "round %d, %s: stored revision %d is older than the acknowledged %d", round, topic, rev, last)
			if rev == last && last > 0 {
				require.Equal(t, ackData, string(got.Data), "round %d, %s: revision %d holds other data than acknowledged", round, topic, rev)
			}
			if rev > 0 {
				require.True(t, wasSent, "round %d, %s: revision %d holds data nobody sent: %s", round, topic, rev, got.Data)
			}
		}
		stale, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".state.json.tmp-*"))
		require.NoError(t, err)
		require.Empty(t, stale, "round %d: the restart removed the temporary files of the killed writer", round)
	}

	c := start(t, newFakeHost(), "--store-file", path)
	pad := strings.Repeat("p", 512)
	for round := range rounds {
		verify(t, c, round)
		// Every store channel sees the stream too, so the kill also lands mid-apply.
		call(t, c, "channel.open", map[string]any{"channel": "w", "topic": "topic-0"})

		killAfter := int64(20 + 15*round)
		ctx := testContext(t)
		var (
			acks   atomic.Int64
			kill   = make(chan struct{})
			once   sync.Once
			wg     sync.WaitGroup
			writer = func(w int) {
				defer wg.Done()
				for seq := 0; ; seq++ {
					topic := fmt.Sprint("topic-", (w+seq)%topics)
					data := fmt.Sprintf(`{"round":%d,"writer":%d,"seq":%d,"pad":%q}`, round, w, seq, pad)
					mu.Lock()
					sent[topic][data] = true
					mu.Unlock()
					var res struct {
						Revision string `json:"revision"`
					}
					if err := c.Call(ctx, "state.set", map[string]any{"topic": topic, "data": json.RawMessage(data)}, &res); err != nil {
						return // killed: this write is unacknowledged
					}
					rev, err := strconv.Atoi(res.Revision)
					if !check(t, err == nil, "revision %q: %v", res.Revision, err) {
						return
					}
					mu.Lock()
					_, dup := acked[topic][rev]
					acked[topic][rev] = data
					lastAck[topic] = max(lastAck[topic], rev)
					mu.Unlock()
					check(t, !dup, "%s: revision %d acknowledged twice", topic, rev)
					if acks.Add(1) == killAfter {
						once.Do(func() { close(kill) })
					}
				}
			}
		)
		for w := range writers {
			wg.Add(1)
			go writer(w)
		}
		select {
		case <-kill:
		case <-time.After(testTimeout):
			t.Fatalf("round %d: only %d of %d writes acknowledged in %s", round, acks.Load(), killAfter, testTimeout)
		}
		c.Kill()
		require.Equal(t, -1, c.ExitCode(), "killed by a signal")
		writersDone := make(chan struct{})
		go func() { wg.Wait(); close(writersDone) }()
		select {
		case <-writersDone:
		case <-time.After(testTimeout):
			t.Fatalf("round %d: writers still blocked after the kill", round)
		}
		interrupted, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".state.json.tmp-*"))
		require.NoError(t, err)
		t.Logf("round %d: killed after %d acknowledged writes; %d write(s) cut short (temporary file left)", round, acks.Load(), len(interrupted))
		c = start(t, newFakeHost(), "--store-file", path)
	}
	verify(t, c, rounds)
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, revs := range acked {
		total += len(revs)
	}
	require.Greater(t, total, 0)
}

// check reports a failure from any goroutine (require must not be called off the test
// goroutine).
func check(t *testing.T, ok bool, format string, args ...any) bool {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
	return ok
}
