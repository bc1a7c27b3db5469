//go:build !nats

package main

import (
	"context"
	"errors"
	"log/slog"
)

// openNATS: the default build has no NATS client, so the embedded store's users do not
// pay for it at each start (docs/scale-out.md has the figures).
func openNATS(context.Context, natsFlags, *slog.Logger) (closingStore, error) {
	return nil, errors.New("--nats-url: this sidecar was built without the NATS store: build it with -tags nats (task build:nats), or drop --nats-url to use the embedded store")
}
