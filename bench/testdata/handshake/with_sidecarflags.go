//go:build with_sidecarflags

package main

import (
	"os"
	"time"

	"github.com/spf13/pflag"
)

// With the tag, the program first parses its arguments with a flag set of the sidecar's
// shape (spf13/pflag, which the sidecar keeps: the same names, kinds and defaults), as the
// sidecar must before it can answer (cold-start variants).
func init() {
	steps = append(steps, func() func() {
		f := pflag.NewFlagSet("handshake", pflag.ContinueOnError)
		f.SortFlags = false
		f.String("framing", "ndjson", "message framing: ndjson or lsp")
		f.String("default-source", "store", "source of channels opened without one")
		f.String("store-file", "", "persist the embedded store in this file")
		f.String("log-level", "off", "log level on stderr")
		f.String("log-format", "text", "log format: text or json")
		f.Bool("trace", false, "print every message on stderr")
		f.Duration("call-timeout", 10*time.Second, "bound on each call to the host")
		f.Int("max-message-bytes", 16<<20, "largest message accepted")
		f.Int("max-channels", 10000, "open channels at once")
		f.Int("max-in-flight", 4096, "requests that wait on the host handled at once")
		f.Int("max-store-bytes", 8<<20, "largest data of one store topic")
		f.Int("delta-history-bytes", 4<<20, "data of recent revisions kept per topic")
		f.Int("parent-pid", 0, "exit when this process is gone")
		f.Bool("version", false, "print the version and exit")
		f.BoolP("help", "h", false, "print this help and exit")
		f.String("nats-url", "", "use a NATS JetStream key-value bucket as the store")
		f.String("nats-bucket", "statesync", "the NATS key-value bucket")
		f.Int("nats-replicas", 1, "replicas of the bucket")
		f.String("nats-creds", "", "NATS user credentials file")
		f.String("nats-tlscert", "", "TLS client certificate for NATS")
		f.String("nats-tlskey", "", "TLS client key for NATS")
		f.String("nats-tlsca", "", "TLS CA certificate")
		if err := f.Parse(os.Args[1:]); err != nil {
			os.Exit(2)
		}
		return func() {}
	})
}
