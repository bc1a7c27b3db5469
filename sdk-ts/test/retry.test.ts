import { describe, expect, it } from "vitest";
import type { Snapshot } from "../src/protocol.js";
import { type RetryAttempt, RetryError, withRetry } from "../src/retry.js";

/** A provider that fails `failures` times, then answers. */
function flaky(failures: number) {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    async getSnapshot(): Promise<Snapshot<string>> {
      calls++;
      if (calls <= failures) {
        throw new Error(`failure ${calls}`);
      }
      return { revision: String(calls), data: "ok" };
    },
  };
}

describe("withRetry", () => {
  it("retries with exponential backoff capped at maxDelayMs, telling onRetry", async () => {
    const provider = flaky(4);
    const slept: number[] = [];
    const retries: RetryAttempt[] = [];
    const wrapped = withRetry(provider, {
      maxAttempts: 5,
      initialDelayMs: 100,
      multiplier: 3,
      maxDelayMs: 1000,
      onRetry: (attempt) => retries.push(attempt),
      sleep: async (ms) => {
        slept.push(ms);
      },
    });
    expect(await wrapped.getSnapshot()).toEqual({ revision: "5", data: "ok" });
    expect(slept).toEqual([100, 300, 900, 1000]);
    expect(retries.map((r) => [r.attempt, r.nextDelayMs, r.willRetry])).toEqual([
      [1, 100, true],
      [2, 300, true],
      [3, 900, true],
      [4, 1000, true],
    ]);
    expect(retries[0]?.error).toMatchObject({ message: "failure 1" });
  });

  it("gives up after maxAttempts with a RetryError whose cause is the last failure", async () => {
    const provider = flaky(10);
    const wrapped = withRetry(provider, { maxAttempts: 3, sleep: async () => {} });
    const error = await wrapped.getSnapshot().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryError);
    expect(error).toMatchObject({ attempts: 3 });
    expect(((error as Error).cause as Error).message).toBe("failure 3");
    expect(provider.calls).toBe(3);
  });

  it("defaults to 3 attempts, 100 ms doubling, no jitter (the sidecar's policy)", async () => {
    const slept: number[] = [];
    const wrapped = withRetry(flaky(10), {
      sleep: async (ms) => {
        slept.push(ms);
      },
    });
    await expect(wrapped.getSnapshot()).rejects.toBeInstanceOf(RetryError);
    expect(slept).toEqual([100, 200]);
  });

  it("keeps jittered delays within ±jitter, and an onRetry that throws changes nothing", async () => {
    const slept: number[] = [];
    const wrapped = withRetry(flaky(20), {
      maxAttempts: 21,
      initialDelayMs: 1000,
      multiplier: 1,
      jitter: 0.5,
      onRetry: () => {
        throw new Error("observer bug");
      },
      sleep: async (ms) => {
        slept.push(ms);
      },
    });
    await wrapped.getSnapshot();
    expect(slept).toHaveLength(20);
    for (const ms of slept) {
      expect(ms).toBeGreaterThanOrEqual(500);
      expect(ms).toBeLessThanOrEqual(1500);
    }
  });

  it("answers at once when the first attempt works", async () => {
    const wrapped = withRetry(flaky(0), {
      sleep: () => {
        throw new Error("must not sleep");
      },
    });
    expect(await wrapped.getSnapshot()).toEqual({ revision: "1", data: "ok" });
  });
});
