package nats

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

// TestFigures prints the table of docs/scale-out.md: a write through one sidecar until it
// is applied in a window, on the embedded store and on NATS. A measurement, not a timed
// assertion; it runs only when asked (task bench:nats):
//
//	STATESYNC_NATS_FIGURES=1 go test -count=1 -run TestFigures -v ./e2e/nats/
func TestFigures(t *testing.T) {
	if os.Getenv("STATESYNC_NATS_FIGURES") == "" {
		t.Skip("set STATESYNC_NATS_FIGURES=1 to measure (task bench:nats)")
	}
	// The figures are the product's, not the race detector's: a plain build.
	plain := filepath.Join(t.TempDir(), "statesync-sidecar")
	build := exec.Command("go", "build", "-tags", "nats", "-o", plain, "../../cmd/statesync-sidecar")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	raceBinary := binary
	binary = plain
	t.Cleanup(func() { binary = raceBinary })

	const writes = 300
	type row struct {
		name     string
		p50, p99 time.Duration
	}
	var rows []row
	measure := func(name string, writer, reader *sidecarProc) {
		applied := make(chan string, writes+1)
		reader.host.mu.Lock()
		reader.host.onApply = func(channel, revision string) {
			if channel == "lat" {
				applied <- revision
			}
		}
		reader.host.mu.Unlock()
		reader.open(t, "lat", "lat-"+name)
		var lat []time.Duration
		for i := range writes {
			start := time.Now()
			rev := writer.set(t, "lat-"+name, fmt.Sprintf(`{"i":%d}`, i))
			for got := ""; got != rev; {
				select {
				case got = <-applied:
				case <-time.After(testTimeout):
					t.Fatalf("%s: write %d (revision %s) was not applied", name, i, rev)
				}
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		rows = append(rows, row{name, lat[len(lat)/2], lat[len(lat)*99/100]})
	}

	embedded := startSidecar(t, "embedded")
	measure("embedded memory store, same sidecar", embedded, embedded)

	one := startNode(t, &server.Options{})
	a1 := startSidecar(t, "A1", "--nats-url", one.url())
	b1 := startSidecar(t, "B1", "--nats-url", one.url(), "--nats-bucket", "statesync")
	measure("NATS 1 node, sidecar A to B", a1, b1)

	nodes := startCluster(t)
	urls := clusterURLs(nodes)
	a3 := startSidecar(t, "A3", "--nats-url", urls, "--nats-replicas", "3")
	b3 := startSidecar(t, "B3", "--nats-url", urls)
	measure("NATS 3 nodes R3, sidecar A to B", a3, b3)
	measure("NATS 3 nodes R3, same sidecar", a3, a3)

	out := fmt.Sprintf("%d sequential writes of ~10 bytes, state.set sent → apply in the window\n\n| store | p50 | p99 |\n| --- | --- | --- |\n", writes)
	for _, r := range rows {
		out += fmt.Sprintf("| %s | %s | %s |\n", r.name, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
	}
	t.Log("\n" + out)
}
