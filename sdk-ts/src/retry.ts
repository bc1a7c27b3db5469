import type { Snapshot } from "./protocol.js";
import type { SnapshotProvider } from "./revision-sync.js";
import { delay } from "./timers.js";

/** Exponential backoff with jitter; the defaults (in brackets) match the sidecar's. */
export interface RetryPolicy {
  /** Total attempts, the first included [3]. */
  maxAttempts?: number;
  /** Delay after the first failure [100 ms]. */
  initialDelayMs?: number;
  /** Growth of the delay per attempt [2]. */
  multiplier?: number;
  /** Cap on one delay [5000 ms]. */
  maxDelayMs?: number;
  /** ± fraction of each delay drawn at random, 0..1 [0]. */
  jitter?: number;
  /** Told of every failed attempt that will be retried. */
  onRetry?(attempt: RetryAttempt): void;
  /** Waits ms; tests pass a fake to avoid real delays. */
  sleep?(ms: number): Promise<void>;
}

export interface RetryAttempt {
  attempt: number;
  error: unknown;
  willRetry: true;
  nextDelayMs: number;
}

/** The last failure of a provider that used up its attempts; `cause` is that failure. */
export class RetryError extends Error {
  override name = "RetryError";
  readonly attempts: number;

  constructor(attempts: number, cause: unknown) {
    super(`gave up after ${attempts} attempts: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.attempts = attempts;
  }
}

/**
 * Wraps a provider so that a failed getSnapshot() is tried again per policy. Retry is a
 * policy of the source, not of the protocol: without this wrapper a refresh makes one
 * attempt. (A channel's sidecar-side retry is `options.retry` of channel.open instead.)
 */
export function withRetry<T>(provider: SnapshotProvider<T>, policy: RetryPolicy = {}): SnapshotProvider<T> {
  const maxAttempts = positiveOr(policy.maxAttempts, 3);
  const initialDelayMs = positiveOr(policy.initialDelayMs, 100);
  const multiplier = policy.multiplier !== undefined && policy.multiplier >= 1 ? policy.multiplier : 2;
  const maxDelayMs = positiveOr(policy.maxDelayMs, 5000);
  const jitter = Math.min(Math.max(policy.jitter ?? 0, 0), 1);
  const sleep = policy.sleep ?? delay;

  const delayAfter = (attempt: number): number => {
    const base = Math.min(initialDelayMs * multiplier ** (attempt - 1), maxDelayMs);
    return jitter > 0 ? base * (1 + jitter * (2 * Math.random() - 1)) : base;
  };

  return {
    async getSnapshot(): Promise<Snapshot<T>> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await provider.getSnapshot();
        } catch (error) {
          if (attempt >= maxAttempts) {
            throw new RetryError(attempt, error);
          }
          const nextDelayMs = delayAfter(attempt);
          try {
            policy.onRetry?.({ attempt, error, willRetry: true, nextDelayMs });
          } catch {
            // An observer's failure must not change the retries.
          }
          await sleep(nextDelayMs);
        }
      }
    },
  };
}

function positiveOr(value: number | undefined, fallback: number): number {
  return value !== undefined && value > 0 ? value : fallback;
}
