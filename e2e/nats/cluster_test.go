package nats

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/state-sync/state-sync/natsstore"
)

// stormSize is the writes per writer before the leader is killed and after it; the
// soak (task test:nats:soak) raises it with STATESYNC_NATS_STORM.
func stormSize(t *testing.T) int {
	if v := os.Getenv("STATESYNC_NATS_STORM"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "STATESYNC_NATS_STORM: want a count")
		return n
	}
	return 15
}

type ackedWrite struct {
	topic, rev, data string
}

// TestClusterLeaderKilledDuringWriteStorm: two sidecars write to a bucket replicated on a
// 3-node cluster; the stream's leader is killed mid-storm. Every acknowledged write is
// readable afterwards, the windows converge, both sidecars keep serving, and a sidecar
// started afterwards opens windows at the current revision.
func TestClusterLeaderKilledDuringWriteStorm(t *testing.T) {
	nodes := startCluster(t)
	urls := clusterURLs(nodes)
	a := startSidecar(t, "A", "--nats-url", urls, "--nats-replicas", "3")
	b := startSidecar(t, "B", "--nats-url", urls, "--nats-replicas", "3")

	hot := []string{"hot.0", "hot.1"}
	for _, p := range []*sidecarProc{a, b} {
		for _, topic := range hot {
			p.open(t, "w-"+topic, topic)
		}
	}

	perPhase := stormSize(t)
	const writersPerSidecar = 3
	var (
		mu       sync.Mutex
		acked    []ackedWrite
		failed   atomic.Int64
		killed   = make(chan struct{})
		killOnce sync.Once
		phase2   atomic.Int64 // acknowledged writes after the kill
		wg       sync.WaitGroup
	)
	totalBefore := int64(2 * writersPerSidecar * perPhase / 2)
	var before atomic.Int64
	stormFor := testTimeout / 2
	if os.Getenv("STATESYNC_NATS_STORM") != "" {
		stormFor = 5 * time.Minute // the soak
	}
	deadline := time.Now().Add(stormFor)
	for _, p := range []*sidecarProc{a, b} {
		for g := range writersPerSidecar {
			wg.Go(func() {
				// Bounded by count and time: enough writes before the kill to have load
				// there, and perPhase acknowledged after it, or the deadline.
				for i := 0; i < 20*perPhase && time.Now().Before(deadline); i++ {
					topic := hot[i%len(hot)]
					if i%2 == 1 {
						// A topic of its own, so this write must still be there at the end.
						topic = fmt.Sprintf("w.%s.%d.%d", p.host.name, g, i)
					}
					data := fmt.Sprintf(`{"by":%q,"g":%d,"i":%d}`, p.host.name, g, i)
					var r struct{ Revision string }
					err := p.Call(testContext(t), "state.set", map[string]any{"topic": topic, "data": json.RawMessage(data)}, &r)
					if err != nil {
						failed.Add(1)
						// Pace retries while the cluster elects a leader: a refused write
						// comes back at once.
						<-time.After(20 * time.Millisecond)
						continue
					}
					mu.Lock()
					acked = append(acked, ackedWrite{topic, r.Revision, data})
					mu.Unlock()
					select {
					case <-killed:
						if phase2.Add(1) >= int64(2*writersPerSidecar*perPhase) {
							return
						}
					default:
						if before.Add(1) >= totalBefore {
							killOnce.Do(func() { killLeader(t, nodes); close(killed) })
						}
					}
				}
			})
		}
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatalf("the storm ended before the leader was killed: %d writes acknowledged, %d failed", len(acked), failed.Load())
	}
	require.GreaterOrEqual(t, phase2.Load(), int64(1), "no write was acknowledged after the leader was killed (%d failed)", failed.Load())
	t.Logf("storm: %d writes acknowledged (%d after the kill), %d refused", len(acked), phase2.Load(), failed.Load())

	// Both sidecars keep serving: a write through each is acknowledged and applied in the
	// other's windows.
	finalA := writeEventually(t, a, hot[0], `{"final":"A"}`)
	finalB := writeEventually(t, b, hot[1], `{"final":"B"}`)
	b.host.waitWindow(t, "w-"+hot[0], "A's final write", func(w window) bool { return w.revision == finalA })
	a.host.waitWindow(t, "w-"+hot[1], "B's final write", func(w window) bool { return w.revision == finalB })

	// Every acknowledged write is in the bucket, read by a client of the surviving nodes.
	var live []*node
	for _, n := range nodes {
		if n.srv.Running() {
			live = append(live, n)
		}
	}
	nc, err := natsgo.Connect(clusterURLs(live))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(testContext(t), "statesync")
	require.NoError(t, err)
	status, err := kv.Status(testContext(t))
	require.NoError(t, err)
	require.Equal(t, 3, status.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas)
	latest := map[string]string{} // hot topic → highest acknowledged revision
	for _, w := range acked {
		if w.topic == hot[0] || w.topic == hot[1] {
			if revLess(latest[w.topic], w.rev) {
				latest[w.topic] = w.rev
			}
			continue
		}
		e, err := kv.Get(testContext(t), natsstore.EncodeKey(w.topic))
		require.NoError(t, err, "acknowledged write to %s (revision %s) is gone", w.topic, w.rev)
		require.Equal(t, w.rev, strconv.FormatUint(e.Revision(), 10), "topic %s", w.topic)
		require.JSONEq(t, w.data, string(e.Value()), "topic %s", w.topic)
	}

	// The windows of both sidecars converge on the bucket's state of each hot topic.
	for _, topic := range hot {
		e, err := kv.Get(testContext(t), topic)
		require.NoError(t, err)
		want := strconv.FormatUint(e.Revision(), 10)
		require.False(t, revLess(want, latest[topic]), "topic %s: the bucket is at %s, behind the acknowledged %s", topic, want, latest[topic])
		for _, p := range []*sidecarProc{a, b} {
			p.host.waitWindow(t, "w-"+topic, "the bucket's revision "+want, func(w window) bool { return w.revision == want })
			require.JSONEq(t, string(e.Value()), string(p.host.window("w-"+topic).data))
		}
	}

	// A sidecar started now opens its windows at the current revision.
	require.NoError(t, a.Close(5*time.Second))
	a2 := startSidecar(t, "A2", "--nats-url", urls)
	e, err := kv.Get(testContext(t), hot[0])
	require.NoError(t, err)
	require.Equal(t, strconv.FormatUint(e.Revision(), 10), a2.open(t, "w", hot[0]))
}

// killLeader stops the node that leads the bucket's stream.
func killLeader(t *testing.T, nodes []*node) {
	for _, n := range nodes {
		if n.srv.JetStreamIsStreamLeader("$G", "KV_statesync") {
			t.Logf("killing the stream leader %s", n.srv.Name())
			n.stop()
			return
		}
	}
	t.Errorf("no node leads the bucket's stream")
}

// writeEventually retries a write until the cluster takes it (a new leader may still be
// being elected), and returns its revision.
func writeEventually(t *testing.T, p *sidecarProc, topic, data string) string {
	t.Helper()
	var rev string
	var lastErr error
	waitUntil(t, p.host.name+" to write "+topic, func() bool {
		var r struct{ Revision string }
		lastErr = p.Call(testContext(t), "state.set", map[string]any{"topic": topic, "data": json.RawMessage(data)}, &r)
		rev = r.Revision
		return lastErr == nil
	})
	return rev
}
