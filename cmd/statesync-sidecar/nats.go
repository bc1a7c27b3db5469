//go:build nats

package main

import (
	"context"
	"log/slog"

	"github.com/state-sync/state-sync/natsstore"
)

// openNATS opens the NATS store. Only builds tagged nats link the NATS client: linking
// it costs every start its package inits and doubles the binary (docs/scale-out.md).
func openNATS(ctx context.Context, nf natsFlags, log *slog.Logger) (closingStore, error) {
	return natsstore.Open(ctx, natsstore.Config{
		URLs: *nf.url, Bucket: *nf.bucket, Replicas: *nf.replicas, CredsFile: *nf.creds,
		TLSCert: *nf.tlsCert, TLSKey: *nf.tlsKey, TLSCA: *nf.tlsCA, Logger: log,
	})
}
