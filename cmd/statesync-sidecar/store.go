package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/state-sync/state-sync/rpc"
	"github.com/state-sync/state-sync/store"
)

// natsFlags select and configure the NATS store; nothing of NATS runs without --nats-url.
type natsFlags struct {
	url, bucket, creds, tlsCert, tlsKey, tlsCA *string
	replicas                                   *int
}

func addNATSFlags(flags *pflag.FlagSet) natsFlags {
	return natsFlags{
		url:      flags.String("nats-url", "", "use a NATS JetStream key-value bucket as the store, shared by every sidecar on it (URL[,URL...]); see docs/scale-out.md"),
		bucket:   flags.String("nats-bucket", "statesync", "the NATS key-value bucket; created when missing"),
		replicas: flags.Int("nats-replicas", 1, "replicas of the bucket when this sidecar creates it"),
		creds:    flags.String("nats-creds", "", "NATS user credentials file (.creds)"),
		tlsCert:  flags.String("nats-tlscert", "", "TLS client certificate for NATS"),
		tlsKey:   flags.String("nats-tlskey", "", "TLS client key for NATS"),
		tlsCA:    flags.String("nats-tlsca", "", "TLS CA certificate that signed the NATS server's"),
	}
}

// check reports a flag combination that cannot work, as a usage error.
func (f natsFlags) check(storeFile string) error {
	if *f.url == "" {
		for name, v := range map[string]string{"--nats-creds": *f.creds, "--nats-tlscert": *f.tlsCert, "--nats-tlskey": *f.tlsKey, "--nats-tlsca": *f.tlsCA} {
			if v != "" {
				return fmt.Errorf("%s needs --nats-url: give the NATS server's URL too, or drop %s", name, name)
			}
		}
		return nil
	}
	switch {
	case storeFile != "":
		return fmt.Errorf("--store-file and --nats-url both select the store: give one of them")
	case strings.TrimSpace(*f.bucket) == "":
		return fmt.Errorf("--nats-bucket: want a bucket name such as %q", "statesync")
	case *f.replicas < 1 || *f.replicas > 5:
		return fmt.Errorf("--nats-replicas: want 1 to 5 (JetStream's range), got %d", *f.replicas)
	}
	return nil
}

type closingStore interface {
	rpc.Store
	Close() error
}

// openStore opens the store: NATS when --nats-url is given, else a file when path is
// set, else memory.
func openStore(ctx context.Context, path string, maxBytes int, nf natsFlags, log *slog.Logger) (closingStore, error) {
	if *nf.url != "" {
		return openNATS(ctx, nf, log)
	}
	if path == "" {
		return store.NewMemory(maxBytes), nil
	}
	return store.OpenFile(path, maxBytes)
}
