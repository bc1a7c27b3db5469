// A measurement, not a timed test: how long from `state.set` in one Tauri window to the
// apply in the two others (3 windows, 1 KiB), through the owner's relay and the real
// sidecar, with the guide's set-up (--store-file, so each write is fsynced). It prints the
// figures docs/tauri.md quotes; it fails only if a window misses a write.
//
//   npx vitest run test/e2e/tauri-windows-latency.test.ts
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { afterEach, expect, it } from "vitest";
import type { StateSyncClient } from "../../src/client.js";
import { until, within } from "../helpers/async.js";
import { seededRandom } from "../helpers/streams.js";
import { sidecarBinary } from "../integration/harness.js";
import { TauriApp } from "./tauri-app/app.js";

const SAMPLES = Number(process.env.TAURI_LATENCY_SAMPLES ?? 200);

let app: TauriApp | undefined;
let dir: string | undefined;

afterEach(async () => {
  const children = [...(app?.shell.children.values() ?? [])];
  app?.dispose();
  await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((r) => child.once("exit", r)) : 0)));
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

it(`state.set in one window → apply in the two others, 3 windows, 1 KiB, ${SAMPLES} samples`, async () => {
  dir = mkdtempSync(join(tmpdir(), "state-sync-tauri-latency-"));
  app = new TauriApp({ sidecar: sidecarBinary(), appDataDir: dir, random: seededRandom(3) });
  const owner = await app.open("state-sync");
  await within(owner.api.startStateSync(), "the owner to start");

  /** When each window applied sample i (performance.now()). */
  const applied = new Map<string, Map<number, number>>();
  const clients: StateSyncClient[] = [];
  for (const label of ["main", "settings", "preview"]) {
    const page = await app.open(label);
    const times = new Map<number, number>();
    applied.set(label, times);
    clients.push(
      await page.api.syncTopic("app-config", (data) => {
        times.set((data as { i: number }).i, performance.now());
      }),
    );
  }
  const writer = clients[0] as StateSyncClient;
  const padding = "x".repeat(1024 - JSON.stringify({ i: 0, padding: "" }).length - 3);

  const latencies: number[] = [];
  const setAnswers: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const start = performance.now();
    await writer.set("app-config", { i, padding });
    setAnswers.push(performance.now() - start);
    await until(
      () => applied.get("settings")?.has(i) === true && applied.get("preview")?.has(i) === true,
      `sample ${i} in both other windows`,
    );
    latencies.push(Math.max(applied.get("settings")?.get(i) ?? 0, applied.get("preview")?.get(i) ?? 0) - start);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const answers = [...setAnswers].sort((a, b) => a - b);
  const ms = (value: number) => `${value.toFixed(2)} ms`;
  console.info(
    `tauri windows latency (${SAMPLES} samples, 1 KiB, 3 windows, --store-file): ` +
      `set → applied in both others p50 ${ms(percentile(sorted, 50))}, p95 ${ms(percentile(sorted, 95))}, ` +
      `p99 ${ms(percentile(sorted, 99))}; the set's own answer p50 ${ms(percentile(answers, 50))}`,
  );
  expect(latencies).toHaveLength(SAMPLES);
}, 120_000);
