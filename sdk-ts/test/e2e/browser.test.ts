// Browser windows, for real: Debian's Chromium (driven by playwright-core) opens the demo
// page (demo/browser) in several tabs. Each tab runs the SDK core bundled for the browser
// by esbuild and talks over a loopback WebSocket to a Node host that spawned the real
// sidecar and runs the SDK's relay, the way an Electron main process does. Each tab keeps
// one topic in sync with createRevisionSync and renders it.
//
// Chromium is required: when it is missing this suite fails (run `task setup:browser`),
// it never skips.
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DemoServer, startDemoServer } from "../../demo/browser/server.js";
import type { StateSyncClient } from "../../src/index.js";
import { sidecarBinary } from "../integration/harness.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];
const ARTIFACTS = fileURLToPath(new URL("../../../e2e/artifacts/", import.meta.url));
const SCREENSHOT = `${ARTIFACTS}browser-windows.png`;
const TOPIC = "demo";
/** Applies a window may take for a burst of 1,000 writes: coalescing keeps it far below 1,000. */
const BURST_APPLY_BOUND = 40;
const WAIT_MS = 15_000;

interface DemoWindow {
  name: string;
  page: Page;
}

let server: DemoServer;
let browser: Browser;
let context: BrowserContext;
let hostClient: StateSyncClient;
const consoleErrors: string[] = [];
const windows = new Map<string, DemoWindow>();

async function openWindow(name: string): Promise<DemoWindow> {
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(`${name}: console.error: ${message.text()}`);
  });
  page.on("pageerror", (error) => consoleErrors.push(`${name}: uncaught: ${error.message}`));
  page.on("requestfailed", (request) => consoleErrors.push(`${name}: request failed: ${request.url()}`));
  await page.goto(`${server.url}?name=${name}&topic=${TOPIC}`);
  await page.evaluate(() => window.stateSyncDemo.ready);
  const opened = { name, page };
  windows.set(name, opened);
  return opened;
}

function get(name: string): DemoWindow {
  const found = windows.get(name);
  if (found === undefined) throw new Error(`no window ${name}`);
  return found;
}

const view = (w: DemoWindow) => w.page.evaluate(() => ({ ...window.stateSyncDemo.view }));

/** Waits until every window has applied `revision` (polled in the page, bounded). */
async function converged(names: string[], revision: string): Promise<void> {
  await Promise.all(
    names.map((name) =>
      get(name).page.waitForFunction((rev) => window.stateSyncDemo.view.revision === rev, revision, {
        timeout: WAIT_MS,
        polling: 10,
      }),
    ),
  );
}

async function channelsInSidecar(): Promise<string[]> {
  return (await hostClient.listChannels()).map((status) => status.channel).sort();
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: the browser end-to-end tests need it. ` +
        "Install it with `task setup:browser` (apt-get install chromium), or point CHROMIUM_PATH at a Chromium binary.",
    );
  }
  server = await startDemoServer({ sidecarPath: sidecarBinary() });
  // launch() gives Chromium a fresh temporary profile (--user-data-dir) of its own.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  context = await browser.newContext({ viewport: { width: 460, height: 340 } });
  hostClient = await server.host.connect();
}, 30_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await server?.close();
});

describe("browser windows (Chromium) through the host relay and the real sidecar", () => {
  it("three windows converge after writes from each, and concurrent increments lose nothing", async () => {
    const names = ["settings", "editor", "preview"];
    await Promise.all(names.map(openWindow));
    expect(await channelsInSidecar()).toEqual(names.map((name) => `${name}/${TOPIC}`).sort());

    for (const [i, name] of names.entries()) {
      const state = { count: i + 1, by: name, note: `written in ${name}` };
      const revision = await get(name).page.evaluate((s) => window.stateSyncDemo.write(s), state);
      await converged(names, revision);
      for (const other of names) {
        expect(await view(get(other))).toMatchObject({ revision, data: state });
        expect(await get(other).page.textContent("#by")).toBe(name); // rendered, not just stored
      }
    }

    // Every window increments 10 times at once, each a compare-and-set retried on conflict.
    const base = (await hostClient.get<{ count: number }>(TOPIC)).data?.count ?? 0;
    await Promise.all(
      names.map((name) =>
        get(name).page.evaluate(async () => {
          for (let i = 0; i < 10; i++) await window.stateSyncDemo.increment();
        }),
      ),
    );
    const final = await hostClient.get<{ count: number }>(TOPIC);
    expect(final.data?.count).toBe(base + 30);
    await converged(names, final.revision);
    for (const name of names) {
      expect((await view(get(name))).data).toEqual(final.data);
      expect(await get(name).page.textContent("#count")).toBe(String(base + 30));
    }
    expect(consoleErrors).toEqual([]);
  }, 30_000);

  it(`a burst of 1,000 writes converges with at most ${BURST_APPLY_BOUND} applies per window`, async () => {
    const names = ["settings", "editor", "preview"];
    const before = await Promise.all(names.map(async (name) => (await view(get(name))).applies));
    const started = performance.now();
    const last = await get("settings").page.evaluate(() => window.stateSyncDemo.burst(1000));
    await converged(names, last);
    const elapsed = Math.round(performance.now() - started);

    const final = await hostClient.get(TOPIC);
    expect(final.revision).toBe(last);
    const applies: Record<string, number> = {};
    for (const [i, name] of names.entries()) {
      const now = await view(get(name));
      expect(now.data).toEqual(final.data);
      applies[name] = now.applies - (before[i] ?? 0);
    }
    console.info(`browser: 1,000 writes from one window in ${elapsed} ms → applies per window`, applies);
    for (const count of Object.values(applies)) {
      expect(count).toBeGreaterThanOrEqual(1);
      expect(count).toBeLessThanOrEqual(BURST_APPLY_BOUND);
    }
    expect(consoleErrors).toEqual([]);
  }, 30_000);

  it("a window opened late gets the latest state at once, and the windows are saved as a screenshot", async () => {
    const latest = await hostClient.get(TOPIC);
    const late = await openWindow("inspector"); // resolves once createRevisionSync's start() did
    const first = await view(late);
    expect(first).toMatchObject({ revision: latest.revision, data: latest.data, applies: 1 });
    expect(await late.page.textContent("#revision")).toBe(latest.revision);

    // The artifact: every window side by side, as rendered.
    const shown = ["settings", "editor", "preview", "inspector"].map(get);
    const shots = await Promise.all(shown.map((w) => w.page.screenshot()));
    const sheet = await context.newPage();
    await sheet.setViewportSize({ width: 2 * 460 + 3 * 10, height: 2 * 340 + 3 * 10 });
    await sheet.setContent(
      `<body style="margin:0;padding:10px;background:#30343b;display:grid;grid-template-columns:repeat(2,460px);gap:10px">${shots
        .map((png) => `<img width="460" height="340" src="data:image/png;base64,${png.toString("base64")}">`)
        .join("")}</body>`,
    );
    await sheet.evaluate(() => Promise.all(Array.from(document.images, (image) => image.decode())));
    mkdirSync(ARTIFACTS, { recursive: true });
    await sheet.screenshot({ path: SCREENSHOT });
    await sheet.close();
    expect(existsSync(SCREENSHOT)).toBe(true);
    console.info(`browser: screenshot of ${shots.length} windows at ${SCREENSHOT}`);
    expect(consoleErrors).toEqual([]);
  }, 30_000);

  it("closing a page closes its channels in the sidecar (channel.list); the other windows keep syncing", async () => {
    const all = [...windows.keys()];
    expect(await channelsInSidecar()).toEqual(all.map((name) => `${name}/${TOPIC}`).sort());

    await get("editor").page.close();
    windows.delete("editor");
    const open = [...windows.keys()];
    await expect
      .poll(channelsInSidecar, { timeout: WAIT_MS, interval: 20 })
      .toEqual(open.map((name) => `${name}/${TOPIC}`).sort());

    const revision = await get("preview").page.evaluate(() =>
      window.stateSyncDemo.write({ count: -1, by: "preview", note: "after editor closed" }),
    );
    await converged(open, revision);

    for (const name of open) {
      await get(name).page.close();
      windows.delete(name);
    }
    await expect.poll(channelsInSidecar, { timeout: WAIT_MS, interval: 20 }).toEqual([]);
    await expect.poll(() => server.windows(), { timeout: WAIT_MS, interval: 20 }).toBe(0);
    expect(consoleErrors).toEqual([]);
  }, 30_000);
});
