// Several Tauri windows, each its own JavaScript realm with its own copy of @tauri-apps/api,
// @tauri-apps/plugin-shell and the SDK, synced through the owner window's relay
// (createTauriRelay) and the real statesync-sidecar; tauri-app/app.ts plays Tauri's core
// between them (events by label, window destruction, reloads, the shell plugin).
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { StateSyncClient } from "../../src/client.js";
import type { TauriRelay } from "../../src/tauri.js";
import { until, within } from "../helpers/async.js";
import { prepareArgs, type ScopeEntry } from "../helpers/shell-scope.js";
import { seededRandom } from "../helpers/streams.js";
import { sidecarBinary } from "../integration/harness.js";
import { type Page, TauriApp } from "./tauri-app/app.js";

const OWNER = "state-sync"; // the hidden window of the guide
const TO_WINDOW = "state-sync://to-window";

let app: TauriApp;
let dir: string;
let hostState: { revision: string; data: unknown };
/** lib.rs's commands as the webviews invoked them. */
let rustCalls: { cmd: string; args: Record<string, unknown>; label: string }[];
/** Commands the test's capabilities refuse, by window label. */
let denied: Map<string, RegExp>;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "state-sync-tauri-windows-"));
  hostState = { revision: "1", data: { user: "ada" } };
  rustCalls = [];
  denied = new Map();
  app = new TauriApp({
    sidecar: sidecarBinary(),
    appDataDir: dir,
    random: seededRandom(12),
    denied: (label, cmd) => denied.get(label)?.test(cmd) === true,
    // lib.rs's state_snapshot command (docs/tauri.md): the Rust state of a host topic.
    commands: (cmd, args, label) => {
      rustCalls.push({ cmd, args, label });
      if (cmd === "state_snapshot" && args.topic === "session") return hostState;
      throw `command ${cmd} not found`;
    },
  });
});

afterEach(async () => {
  const children = [...app.shell.children.values()];
  app.dispose();
  await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((r) => child.once("exit", r)) : 0)));
  rmSync(dir, { recursive: true, force: true });
});

/** A window running the guide's syncTopic: what it rendered, in order. */
interface View {
  page: Page;
  label: string;
  rendered: unknown[];
  client: StateSyncClient;
  /** Every client the window had: the first, then one per reconnection. */
  clients: StateSyncClient[];
}

async function openWindow(label: string, topic = "app-config", source: "store" | "host" = "store"): Promise<View> {
  const page = app.pages.get(label) ?? (await app.open(label));
  const rendered: unknown[] = [];
  const client = await within(
    page.api.syncTopic(topic, (data) => rendered.push(JSON.parse(JSON.stringify(data))), source),
    `window ${label} to sync ${topic}`,
  );
  return { page, label, rendered, client, clients: [client] };
}

async function startOwner(): Promise<{ page: Page; relay: TauriRelay; host: StateSyncClient }> {
  const page = await app.open(OWNER);
  const relay = await within(page.api.startStateSync(), "the owner to start the relay");
  return { page, relay, host: await relay.connect() };
}

const last = (view: View) => view.rendered.at(-1);
const channelsOf = async (host: StateSyncClient) => (await host.listChannels()).map((s) => s.channel).sort();

/** The session id a page load said hello with. */
function sessionOf(label: string, load: number): string {
  const hello = app.emitted.find(
    (e) => e.from === label && e.load === load && (e.payload as { kind?: string }).kind === "hello",
  );
  const session = (hello?.payload as { session?: string } | undefined)?.session;
  if (session === undefined) throw new Error(`no hello from window ${label}, page load ${load}`);
  return session;
}

/** Messages the owner emitted to a label after `since`, optionally for one session only. */
function sentTo(label: string, since: number, session?: string): unknown[] {
  return app.emitted
    .filter((e) => e.seq > since && e.event === TO_WINDOW && "label" in e.target && e.target.label === label)
    .map((e) => e.payload as { session: string; messages?: unknown[] })
    .filter((p) => session === undefined || p.session === session)
    .flatMap((p) => p.messages ?? []);
}

const applies = (messages: unknown[]) => messages.filter((m) => (m as { method?: string }).method === "apply");

describe("Tauri with many windows (createTauriRelay + connectTauriWindow, real sidecar)", () => {
  it("three windows converge on a store topic; the owner spawned the sidecar as its capability allows", async () => {
    const { host } = await startOwner();
    const views = [await openWindow("main"), await openWindow("settings"), await openWindow("preview")];
    expect(views.map((v) => v.rendered)).toStrictEqual([[], [], []]); // nothing stored yet: nothing applied

    await views[1]?.client.set("app-config", { theme: "dark" });
    await until(() => views.every((v) => v.rendered.length === 1), "every window to apply the write");
    expect(views.map(last)).toEqual([{ theme: "dark" }, { theme: "dark" }, { theme: "dark" }]);

    const spawn = app.shell.invocations.find(({ cmd }) => cmd === "plugin:shell|spawn");
    expect(spawn?.args).toMatchObject({
      program: "binaries/statesync-sidecar",
      args: ["--store-file", join(dir, "state.json")],
      options: { sidecar: true, encoding: "raw" },
    });
    expect(existsSync(join(dir, "state.json"))).toBe(true);
    expect(await channelsOf(host)).toHaveLength(3);
    // The shell plugin passes exactly these arguments under the guide's owner capability.
    const capability = JSON.parse(
      readFileSync(new URL("../docs/tauri-capability-owner.json", import.meta.url), "utf8"),
    ) as { permissions: (string | { identifier: string; allow: ScopeEntry[] })[] };
    const scope = capability.permissions.find((p) => typeof p === "object" && p.identifier === "shell:allow-spawn");
    const entry = typeof scope === "object" ? scope.allow[0] : undefined;
    const args = (spawn?.args.args ?? []) as string[];
    expect(entry && prepareArgs(entry, args)).toEqual(args);
  });

  it("the owner's own page syncs too (the main window as owner): connectTauriWindow works in it", async () => {
    const { host } = await startOwner();
    const ownerView = await openWindow(OWNER);
    const main = await openWindow("main");
    await main.client.set("app-config", { theme: "dark" });
    await until(() => ownerView.rendered.length === 1 && main.rendered.length === 1, "both pages to apply");
    await ownerView.client.set("app-config", { theme: "light" });
    await until(() => main.rendered.length === 2, "main to apply the owner page's write");
    expect([last(ownerView), last(main)]).toEqual([{ theme: "light" }, { theme: "light" }]);
    expect(await channelsOf(host)).toHaveLength(2);
  });

  it("a window that starts before the owner waits for the owner's ready, then syncs", async () => {
    const page = await app.open("main");
    const rendered: unknown[] = [];
    const connecting = page.api.syncTopic("app-config", (data) => rendered.push(data));
    await until(() => app.emitted.some((e) => e.from === "main"), "main's first hello");
    const { host } = await startOwner(); // its ready makes main say hello again
    const client = await within(connecting, "main to connect once the owner is up");
    await client.set("app-config", { theme: "dark" });
    await until(() => rendered.length === 1, "main to apply");
    expect(await channelsOf(host)).toHaveLength(1);
  });

  it("with no owner at all, connectTauriWindow fails after ownerTimeoutMs with a message naming the fix", async () => {
    const page = await app.open("main");
    const error = await page.api.connectTauriWindow({ ownerTimeoutMs: 50 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.name).toBe("ConnectionClosedError");
    expect(error?.message).toMatch(/no state-sync owner answered within 50 ms: call createTauriRelay\(\)/);
  });

  it("missing permissions: the owner and the windows fail with a message naming the capability to add", async () => {
    denied.set(OWNER, /^plugin:shell\|spawn$/);
    const owner = await app.open(OWNER);
    const ownerError = await owner.api.startStateSync().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(ownerError?.message).toMatch(
      /shell\.spawn not allowed.*needs shell:allow-spawn for "binaries\/statesync-sidecar"/,
    );
    expect(ownerError?.message).toContain(JSON.stringify(["--store-file", join(dir, "state.json")]));

    denied.set("main", /^plugin:event\|/);
    const main = await app.open("main");
    const windowError = await main.api.connectTauriWindow().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(windowError?.message).toMatch(/event\.listen not allowed.*core:event:default/);
  });

  it("a window opened late starts at the current revision", async () => {
    const { host } = await startOwner();
    const first = await openWindow("main");
    for (let i = 1; i <= 5; i++) await first.client.set("app-config", { step: i });
    const late = await openWindow("late");
    expect(late.rendered).toEqual([{ step: 5 }]);
    const statuses = await host.listChannels();
    expect(statuses.map((s) => s.localRevision)).toEqual(["5", "5"]);
  });

  it("a reloaded window: its old channels are closed (channel.list shows it), the new page converges", async () => {
    const { host } = await startOwner();
    const main = await openWindow("main");
    const settings = await openWindow("settings");
    const secondTopic = await openWindow("settings", "recent-files"); // a second connection of the page
    await secondTopic.client.set("recent-files", ["a.txt"]);
    await until(() => secondTopic.rendered.length === 1, "the page's second connection to apply");
    const before = await channelsOf(host);
    expect(before).toHaveLength(3);
    const oldSession = sessionOf("settings", 1);

    // No pagehide: the new page's hello alone tells the owner the old page is gone.
    await app.reload("settings", { pagehide: false });
    const reloaded = await openWindow("settings");
    const after = await channelsOf(host);
    expect(after).toHaveLength(2);
    expect(after.filter((c) => before.includes(c))).toHaveLength(1); // main's; both of the old page's are closed
    const closedAt = app.now();

    await main.client.set("app-config", { theme: "light" });
    await until(() => main.rendered.length === 1 && reloaded.rendered.length === 1, "both windows to apply");
    expect([last(main), last(reloaded)]).toEqual([{ theme: "light" }, { theme: "light" }]);
    expect(settings.rendered).toStrictEqual([]); // the old page got nothing
    expect(sentTo("settings", closedAt, oldSession)).toEqual([]);

    // A reload with pagehide: the goodbye closes the channel before the new page says hello.
    await app.reload("settings", { pagehide: true });
    await expect.poll(() => channelsOf(host), { timeout: 5000, interval: 10 }).toHaveLength(1);
    await openWindow("settings");
    expect(await channelsOf(host)).toHaveLength(2);
  });

  it("a window closed mid-burst: its channel is closed, no apply is sent to it afterwards, no leak", async () => {
    const { host } = await startOwner();
    const views = [await openWindow("main"), await openWindow("settings"), await openWindow("preview")];
    const [main, settings, preview] = views as [View, View, View];
    const before = await channelsOf(host);
    expect(before).toHaveLength(3);

    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      writes.push(main.client.set("app-config", { n: i }));
      if (i === 100) {
        await writes[50];
        app.destroy("preview");
      }
    }
    await Promise.all(writes);
    const final = await host.get("app-config");
    await until(
      () => [main, settings].every((v) => JSON.stringify(last(v)) === JSON.stringify(final.data)),
      "the remaining windows to converge",
    );
    await expect.poll(() => channelsOf(host), { timeout: 5000, interval: 10 }).toHaveLength(2);
    const gone = app.now();
    expect((await channelsOf(host)).every((c) => before.includes(c))).toBe(true);

    await main.client.set("app-config", { n: "after" });
    await until(() => (last(settings) as { n?: unknown }).n === "after", "settings to apply the next write");
    expect(applies(sentTo("preview", gone))).toEqual([]);
    expect(app.delivered.filter((d) => d.label === "preview" && d.seq > gone)).toEqual([]);
    const statuses = await host.listChannels();
    expect(statuses).toHaveLength(2);
    expect(preview.client.state).toBe("open"); // its realm is gone; nothing ran there to close it
  });

  it("the owner closes: windows get a ConnectionClosedError, not a hang, and reconnect to a new owner", async () => {
    const first = await startOwner();
    const main = await openWindow("main");
    const settings = await openWindow("settings");
    await main.client.set("app-config", { theme: "dark" });
    await until(() => settings.rendered.length === 1 && main.rendered.length === 1, "both windows to apply");

    const closes = [main, settings].map(
      (v) => new Promise<Error | undefined>((resolve) => v.client.onClose((error) => resolve(error))),
    );
    // In flight as the owner goes: it must fail, not hang.
    const pending = main.client.connection.request("channel.list", {}).then(
      () => undefined,
      (error: Error) => error,
    );
    const oldPid = first.relay.link.child.pid;
    app.destroy(OWNER); // no pagehide: the destroyed event alone tells the windows
    const errors = await within(Promise.all(closes), "both windows to hear the owner is gone");
    for (const error of errors) {
      expect(error?.name).toBe("ConnectionClosedError");
      expect(error?.message).toMatch(/owner window "state-sync" closed.*connectTauriWindow\(\) again/);
    }
    const rejected = await within(pending, "the pending request");
    expect(rejected?.name).toBe("ConnectionClosedError");

    // A new owner window: it ends the old sidecar (the plugin kept it running), takes the
    // store file, and the guide's syncTopic reconnects every window on its own.
    const second = await startOwner();
    expect(app.shell.invocations.some(({ cmd, args }) => cmd === "plugin:shell|kill" && args.pid === oldPid)).toBe(
      true,
    );
    await expect.poll(() => channelsOf(second.host), { timeout: 5000, interval: 10 }).toHaveLength(2);
    await until(() => main.rendered.length === 2 && settings.rendered.length === 2, "both windows to re-apply");
    expect([last(main), last(settings)]).toEqual([{ theme: "dark" }, { theme: "dark" }]); // the store file kept it
    await second.host.set("app-config", { theme: "light" });
    await until(() => main.rendered.length === 3 && settings.rendered.length === 3, "both windows to apply");
    expect([last(main), last(settings)]).toEqual([{ theme: "light" }, { theme: "light" }]);
  });

  it("the owner page reloads: windows hear the new owner's ready, reconnect, and the old sidecar is ended", async () => {
    const first = await startOwner();
    const main = await openWindow("main");
    await main.client.set("app-config", { theme: "dark" });
    await until(() => main.rendered.length === 1, "main to apply");
    const closed = new Promise<Error | undefined>((resolve) => main.client.onClose(resolve));
    const oldPid = first.relay.link.child.pid;

    const page = await app.reload(OWNER, { pagehide: false }); // a dev server's full reload, say
    const relay = await within(page.api.startStateSync(), "the reloaded owner to start");
    expect((await within(closed, "main to hear the owner was replaced"))?.message).toMatch(
      /owner window "state-sync" was replaced by a new owner/,
    );
    expect(app.shell.invocations.some(({ cmd, args }) => cmd === "plugin:shell|kill" && args.pid === oldPid)).toBe(
      true,
    );
    await until(() => main.rendered.length === 2, "main to sync again through the new owner");
    const host = await relay.connect();
    await host.set("app-config", { theme: "light" });
    await until(() => main.rendered.length === 3, "main to apply the new owner's write");
    expect(main.rendered).toEqual([{ theme: "dark" }, { theme: "dark" }, { theme: "light" }]);
  });

  it("a host topic: the owner answers getSnapshot by invoking lib.rs's command, Rust's event invalidates", async () => {
    await startOwner();
    const views = [await openWindow("main", "session", "host"), await openWindow("settings", "session", "host")];
    expect(views.map((v) => v.rendered)).toEqual([[{ user: "ada" }], [{ user: "ada" }]]);
    const atOpen = rustCalls.length;

    hostState = { revision: "2", data: { user: "grace" } };
    app.emitFromRust("state-changed", { topic: "session", revision: "2" }); // app.emit in lib.rs
    await until(() => views.every((v) => v.rendered.length === 2), "both windows to apply revision 2");
    expect(views.map(last)).toEqual([{ user: "grace" }, { user: "grace" }]);
    // Only the owner invokes it: at most once per window opening, then once for revision 2
    // however many windows sync the topic (the sidecar shares the snapshot).
    expect(atOpen).toBeGreaterThanOrEqual(1);
    expect(atOpen).toBeLessThanOrEqual(2);
    expect(rustCalls.slice(atOpen)).toEqual([{ cmd: "state_snapshot", args: { topic: "session" }, label: OWNER }]);
    expect(rustCalls.every((call) => call.label === OWNER && call.args.topic === "session")).toBe(true);
  });

  it("1,000 writes: at most 40 applies per window, every window ends on the last write", async () => {
    const { host } = await startOwner();
    const views = [await openWindow("main"), await openWindow("settings"), await openWindow("preview")];
    const writer = views[0]?.client as StateSyncClient;
    const before = views.map((v) => v.rendered.length);
    await Promise.all(Array.from({ length: 1000 }, (_, i) => writer.set("app-config", { n: i })));
    const final = await host.get("app-config");
    await until(
      () => views.every((v) => JSON.stringify(last(v)) === JSON.stringify(final.data)),
      "every window on the last write",
      10_000,
    );
    const counts = views.map((v, i) => v.rendered.length - (before[i] ?? 0));
    console.info(`tauri windows: 1000 writes → applies per window ${counts.join(", ")}`);
    for (const count of counts) expect(count).toBeLessThanOrEqual(40);
  }, 60_000); // a bound for a loaded machine, not a timing: the counts are the assertion
});
