package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy is exponential backoff with jitter around a SnapshotProvider. Zero fields
// take the defaults in brackets.
type RetryPolicy struct {
	MaxAttempts  int           // total attempts, first included [3]
	InitialDelay time.Duration // delay after the first failure [100ms]
	Multiplier   float64       // growth of the delay per attempt [2]
	MaxDelay     time.Duration // cap on one delay [5s]
	Jitter       float64       // ± fraction of each delay drawn at random, 0..1 [0]
	// OnRetry is told of every failed attempt that will be retried.
	OnRetry func(RetryAttempt)
	// Sleep waits d or until ctx ends; nil uses a timer. Tests pass a fake.
	Sleep func(ctx context.Context, d time.Duration) error
}

// RetryAttempt describes one failed attempt.
type RetryAttempt struct {
	Attempt   int
	Err       error
	WillRetry bool
	NextDelay time.Duration
}

// RetryError is the last failure of a provider that used up its attempts.
type RetryError struct {
	Attempts int
	Err      error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("gave up after %d attempts: %v", e.Attempts, e.Err)
}
func (e *RetryError) Unwrap() error { return e.Err }

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.InitialDelay <= 0 {
		p.InitialDelay = 100 * time.Millisecond
	}
	if p.Multiplier < 1 {
		p.Multiplier = 2
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 5 * time.Second
	}
	p.Jitter = min(max(p.Jitter, 0), 1)
	if p.Sleep == nil {
		p.Sleep = sleepContext
	}
	return p
}

// delay is the wait after failed attempt n (1-based).
func (p RetryPolicy) delay(n int) time.Duration {
	d := float64(p.InitialDelay)
	for i := 1; i < n; i++ {
		d *= p.Multiplier
		if d >= float64(p.MaxDelay) {
			break
		}
	}
	d = min(d, float64(p.MaxDelay))
	if p.Jitter > 0 {
		d *= 1 + p.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(d)
}

// WithRetry wraps provider so that a failed fetch is tried again per policy. The engine
// makes a single attempt per refresh unless a policy is configured; retry is a policy of
// the source, not of the protocol. A cancelled context ends the retries at once.
func WithRetry(provider SnapshotProvider, policy RetryPolicy) SnapshotProvider {
	policy = policy.withDefaults()
	return ProviderFunc(func(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
		for attempt := 1; ; attempt++ {
			snapshot, err := provider.GetSnapshot(ctx, req)
			if err == nil {
				return snapshot, nil
			}
			if attempt >= policy.MaxAttempts || ctx.Err() != nil || errors.Is(err, ErrStopped) {
				return Snapshot{}, &RetryError{Attempts: attempt, Err: err}
			}
			next := policy.delay(attempt)
			if policy.OnRetry != nil {
				policy.OnRetry(RetryAttempt{Attempt: attempt, Err: err, WillRetry: true, NextDelay: next})
			}
			if err := policy.Sleep(ctx, next); err != nil {
				return Snapshot{}, &RetryError{Attempts: attempt, Err: err}
			}
		}
	})
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
