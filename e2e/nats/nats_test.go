package nats

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
)

// TestTwoSidecarsShareABucket: a write through one sidecar is applied in the windows of
// the other, compare-and-set conflicts span sidecars, and a burst from both converges.
func TestTwoSidecarsShareABucket(t *testing.T) {
	n := startNode(t, &server.Options{})
	a := startSidecar(t, "A", "--nats-url", n.url())
	b := startSidecar(t, "B", "--nats-url", n.url())
	// A topic that is not a valid NATS key travels encoded and comes back whole.
	const topic = "app config/ü*"
	for _, p := range []*sidecarProc{a, b} {
		for _, ch := range []string{"w1", "w2"} {
			require.Equal(t, "0", p.open(t, ch, topic))
		}
	}

	rev := a.set(t, topic, `{"theme":"dark"}`)
	for _, ch := range []string{"w1", "w2"} {
		b.host.waitWindow(t, ch, "A's write", func(w window) bool { return w.revision == rev })
		require.JSONEq(t, `{"theme":"dark"}`, string(b.host.window(ch).data))
		a.host.waitWindow(t, ch, "A's write", func(w window) bool { return w.revision == rev })
	}
	got, data := b.get(t, topic)
	require.Equal(t, rev, got)
	require.JSONEq(t, `{"theme":"dark"}`, string(data))

	// Both sidecars compare-and-set against the same revision: exactly one wins, the
	// other learns the winner's revision.
	type result struct {
		rev string
		err error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i, p := range []*sidecarProc{a, b} {
		wg.Go(func() {
			var r struct{ Revision string }
			err := p.Call(testContext(t), "state.set", map[string]any{"topic": topic, "data": map[string]int{"writer": i}, "expectedRevision": rev}, &r)
			results[i] = result{r.Revision, err}
		})
	}
	wg.Wait()
	winner, loser := results[0], results[1]
	if winner.err != nil {
		winner, loser = loser, winner
	}
	require.NoError(t, winner.err, "one compare-and-set must win")
	require.Error(t, loser.err, "both compare-and-sets won against revision %s", rev)
	rpcErr := asRPCError(t, loser.err)
	require.EqualValues(t, -32005, rpcErr.Code, "got %v", rpcErr)
	var conflict struct{ CurrentRevision string }
	require.NoError(t, json.Unmarshal(rpcErr.Data, &conflict))
	require.Equal(t, winner.rev, conflict.CurrentRevision)

	// expectedRevision "0" creates: it fails on a topic that exists, from either sidecar.
	rpcErr = b.callErr(t, "state.set", map[string]any{"topic": topic, "data": 1, "expectedRevision": "0"})
	require.EqualValues(t, -32005, rpcErr.Code)
	created := a.call(t, "state.set", map[string]any{"topic": "fresh", "data": 1, "expectedRevision": "0"})
	require.Contains(t, string(created), `"revision"`)

	// A burst from both sidecars: every window ends on the last write, with its data.
	const perSidecar = 40
	var last sync.Map
	for _, p := range []*sidecarProc{a, b} {
		wg.Go(func() {
			for i := range perSidecar {
				r := p.set(t, topic, fmt.Sprintf(`{"from":%q,"i":%d}`, p.host.name, i))
				last.Store(p.host.name+strconv.Itoa(i), r)
			}
		})
	}
	wg.Wait()
	// The bucket's last revision is the highest either sidecar had acknowledged: one
	// sidecar's own copy may not have heard the other's last writes yet when the burst ends.
	count, final := 0, "0"
	last.Range(func(_, v any) bool {
		count++
		if revLess(final, v.(string)) {
			final = v.(string)
		}
		return true
	})
	require.Equal(t, 2*perSidecar, count)
	var finalData json.RawMessage
	for _, p := range []*sidecarProc{a, b} {
		// Each sidecar's own copy reaches the bucket's last revision through its watcher.
		waitUntil(t, p.host.name+" to see revision "+final, func() bool { r, _ := p.get(t, topic); return r == final })
		_, data := p.get(t, topic)
		if finalData == nil {
			finalData = data
		}
		require.JSONEq(t, string(finalData), string(data), "both sidecars hold the same last write")
		for _, ch := range []string{"w1", "w2"} {
			p.host.waitWindow(t, ch, "the burst's last write "+final, func(w window) bool { return w.revision == final })
			require.JSONEq(t, string(finalData), string(p.host.window(ch).data), "%s %s", p.host.name, ch)
		}
	}

	// A sidecar started now: its windows start at the current revision.
	c := startSidecar(t, "C", "--nats-url", n.url())
	require.Equal(t, final, c.open(t, "w1", topic))
	require.JSONEq(t, string(finalData), string(c.host.window("w1").data))
}

// TestStartupErrors: each documented startup failure exits 1 with its message.
func TestStartupErrors(t *testing.T) {
	t.Run("unreachable server", func(t *testing.T) {
		port := freePorts(t, 1)[0]
		code, stderr := runFailing(t, "--nats-url", "nats://127.0.0.1:"+strconv.Itoa(port))
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "cannot reach the NATS server at --nats-url nats://127.0.0.1:"+strconv.Itoa(port))
	})
	t.Run("password refused", func(t *testing.T) {
		n := startNode(t, &server.Options{Username: "app", Password: "right"})
		url := strings.Replace(n.url(), "nats://", "nats://app:wrong@", 1)
		code, stderr := runFailing(t, "--nats-url", url)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "refused the credentials (the user in --nats-url)")
		require.NotContains(t, stderr, "wrong", "the password is printed")
	})
	t.Run("creds refused", func(t *testing.T) {
		n := startNode(t, &server.Options{Username: "app", Password: "right"})
		creds := writeCreds(t)
		code, stderr := runFailing(t, "--nats-url", n.url(), "--nats-creds", creds)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "refused the credentials (--nats-creds "+strconv.Quote(creds)+")")
	})
	t.Run("creds file missing", func(t *testing.T) {
		n := startNode(t, &server.Options{})
		missing := filepath.Join(t.TempDir(), "none.creds")
		code, stderr := runFailing(t, "--nats-url", n.url(), "--nats-creds", missing)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "--nats-creds "+strconv.Quote(missing)+" cannot be used")
	})
	t.Run("JetStream off", func(t *testing.T) {
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
		require.NoError(t, err)
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		require.True(t, srv.ReadyForConnections(10*time.Second))
		code, stderr := runFailing(t, "--nats-url", srv.ClientURL())
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "JetStream is not enabled")
	})
	t.Run("flags without --nats-url", func(t *testing.T) {
		code, stderr := runFailing(t, "--nats-creds", "x.creds")
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "--nats-creds needs --nats-url")
	})
}

// writeCreds writes a .creds file in the format nsc writes, with a fresh user key the
// server does not know.
func writeCreds(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	// The client sends the JWT as is; the server must refuse it (it trusts no operator).
	creds := "-----BEGIN NATS USER JWT-----\neyJhbGciOiJlZDI1NTE5LW5rZXkiLCJ0eXAiOiJKV1QifQ.e30.c2ln\n------END NATS USER JWT------\n\n" +
		"-----BEGIN USER NKEY SEED-----\n" + string(seed) + "\n------END USER NKEY SEED------\n"
	path := filepath.Join(t.TempDir(), "user.creds")
	require.NoError(t, os.WriteFile(path, []byte(creds), 0o600))
	return path
}

// TestBucketAndValueLimit: a missing bucket is created (with the replicas asked for), and
// a value over the server's limit gets -32003 naming the limit.
func TestBucketAndValueLimit(t *testing.T) {
	n := startNode(t, &server.Options{MaxPayload: 4096})
	p := startSidecar(t, "A", "--nats-url", n.url(), "--nats-bucket", "made-here")
	var init struct{ Capabilities struct{ Store string } }
	require.NoError(t, json.Unmarshal(p.call(t, "initialize", map[string]any{"protocolVersion": "1"}), &init))
	require.Equal(t, "nats", init.Capabilities.Store)
	nc, err := natsgo.Connect(n.url())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.KeyValue(testContext(t), "made-here")
	require.NoError(t, err, "the bucket was not created")

	big := `"` + strings.Repeat("x", 5000) + `"`
	rpcErr := p.callErr(t, "state.set", map[string]any{"topic": "t", "data": json.RawMessage(big)})
	require.EqualValues(t, -32003, rpcErr.Code, "got %v", rpcErr)
	require.Contains(t, rpcErr.Message, "over the limit of 4096 (the NATS server's max_payload")
	var limit struct{ Limit, Size int }
	require.NoError(t, json.Unmarshal(rpcErr.Data, &limit))
	require.Equal(t, 4096, limit.Limit)
	require.Equal(t, len(big), limit.Size)
	// Just under the limit is stored.
	p.set(t, "t", `"`+strings.Repeat("x", 4000)+`"`)
}

// TestDisconnection: while the server is down, writes fail clearly and reads serve the
// last data; once it is back, the watcher resumes and the windows converge.
func TestDisconnection(t *testing.T) {
	port := freePorts(t, 1)[0]
	dir := t.TempDir()
	n := startNode(t, &server.Options{Port: port, StoreDir: dir})
	a := startSidecar(t, "A", "--nats-url", n.url())
	b := startSidecar(t, "B", "--nats-url", n.url())
	b.open(t, "w1", "t")
	rev := a.set(t, "t", `"before"`)
	b.host.waitWindow(t, "w1", "the first write", func(w window) bool { return w.revision == rev })

	n.stop()
	waitUntil(t, "A to notice the server is gone", func() bool {
		err := a.Call(testContext(t), "state.set", map[string]any{"topic": "t", "data": json.RawMessage(`"lost"`)}, nil)
		return err != nil
	})
	rpcErr := a.callErr(t, "state.set", map[string]any{"topic": "t", "data": json.RawMessage(`"offline"`)})
	require.EqualValues(t, -32009, rpcErr.Code, "got %v", rpcErr)
	require.Contains(t, rpcErr.Message, "not saved")
	got, data := b.get(t, "t")
	require.Equal(t, rev, got, "reads keep serving the last applied data")
	require.JSONEq(t, `"before"`, string(data))
	require.Equal(t, rev, b.open(t, "w2", "t"), "a window opened offline starts at the last data")

	startNode(t, &server.Options{Port: port, StoreDir: dir})
	var after string
	waitUntil(t, "A to write again after the server came back", func() bool {
		var r struct{ Revision string }
		if err := a.Call(testContext(t), "state.set", map[string]any{"topic": "t", "data": json.RawMessage(`"after"`)}, &r); err != nil {
			return false
		}
		after = r.Revision
		return true
	})
	for _, ch := range []string{"w1", "w2"} {
		b.host.waitWindow(t, ch, "the write after reconnecting", func(w window) bool { return w.revision == after })
		require.JSONEq(t, `"after"`, string(b.host.window(ch).data))
	}
}

func asRPCError(t *testing.T, err error) *rpcError {
	t.Helper()
	var e *rpcError
	require.ErrorAs(t, err, &e)
	return e
}

// TestBucketCreatedAgain: a bucket deleted and created again is a new epoch; every
// sidecar notices (by its periodic check of the bucket) and its windows take the new
// bucket's state, though its revisions start over.
func TestBucketCreatedAgain(t *testing.T) {
	n := startNode(t, &server.Options{})
	a := startSidecar(t, "A", "--nats-url", n.url())
	b := startSidecar(t, "B", "--nats-url", n.url())
	b.open(t, "w1", "t")
	var rev string
	for i := range 3 {
		rev = a.set(t, "t", fmt.Sprintf(`"old %d"`, i))
	}
	b.host.waitWindow(t, "w1", "the old bucket's last write", func(w window) bool { return w.revision == rev })
	oldEpoch := b.host.window("w1").epoch

	nc, err := natsgo.Connect(n.url())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteKeyValue(testContext(t), "statesync"))
	kv, err := js.CreateKeyValue(testContext(t), jetstream.KeyValueConfig{Bucket: "statesync"})
	require.NoError(t, err)
	newRev, err := kv.Put(testContext(t), "t", []byte(`"new"`))
	require.NoError(t, err)
	require.True(t, revLess(strconv.FormatUint(newRev, 10), rev), "the new bucket's revision %d should restart below %s", newRev, rev)

	b.host.waitWindow(t, "w1", "the new bucket's state", func(w window) bool { return string(w.data) == `"new"` })
	w := b.host.window("w1")
	require.Equal(t, strconv.FormatUint(newRev, 10), w.revision)
	require.NotEqual(t, oldEpoch, w.epoch, "the new bucket must be a new epoch")
	waitUntil(t, "A to read the new bucket", func() bool { r, _ := a.get(t, "t"); return r == w.revision })
}
