// Tauri's own JavaScript, unchanged, against the real sidecar. @tauri-apps/plugin-shell's
// Command.sidecar / spawn / Child.write / Child.kill and its stdout, stderr and close events
// run as shipped; only the IPC under them (window.__TAURI_INTERNALS__, via
// @tauri-apps/api/mocks' mockIPC) is served by this process, which spawns the real binary
// and hands its output back the way the plugin's Rust side does (raw byte arrays, cut
// anywhere, through Tauri's ordered Channel). The SDK's Tauri link and createRevisionSync
// run on top as an app would use them.
import { afterEach, describe, expect, it } from "vitest";
import { compareRevisions, connect, createRevisionSync, type StateSyncClient } from "../../src/index.js";
import { createTauriLink, type TauriLink } from "../../src/links/tauri.js";
import { createMemoryLinkPair } from "../../src/memory.js";
import { createSidecarHost } from "../../src/relay.js";
import { until, within } from "../helpers/async.js";
import { seededRandom } from "../helpers/streams.js";
import { sidecarBinary } from "../integration/harness.js";
import { type ShellBackend, serveShellPlugin } from "./tauri-shell-backend.js";

const PROGRAM = "binaries/statesync-sidecar"; // the externalBin name the SDK spawns by default

let backend: ShellBackend | undefined;
const links: TauriLink[] = [];

function serve(seed: number, extra: { reorder?: boolean; maxChunkBytes?: number } = {}): ShellBackend {
  backend = serveShellPlugin({ externalBin: { [PROGRAM]: sidecarBinary() }, random: seededRandom(seed), ...extra });
  return backend;
}

async function tauriLink(options: Parameters<typeof createTauriLink>[0] = {}): Promise<TauriLink> {
  const link = await createTauriLink(options);
  links.push(link);
  closedLinks.set(link, new Promise((resolve) => link.onClose(resolve)));
  return link;
}

const closedLinks = new WeakMap<TauriLink, Promise<Error | undefined>>();

/** Resolves with the link's close error (undefined for a clean close) once it closes. */
function closed(link: TauriLink): Promise<Error | undefined> {
  const known = closedLinks.get(link);
  if (known === undefined) {
    throw new Error("not a link made by tauriLink()");
  }
  return known;
}

/** Text of about `bytes` UTF-8 bytes mixing 1-, 2-, 3- and 4-byte characters. */
function multiByteText(bytes: number): string {
  const unit = "aé€😀"; // 1 + 2 + 3 + 4 bytes
  return unit.repeat(Math.ceil(bytes / 10));
}

interface Rendered<T> {
  revision: string;
  data: T | undefined;
  applies: number;
}

function renderer<T>(): Rendered<T> & { apply(envelope: { revision: string; data: T }): void } {
  const view: Rendered<T> & { apply(envelope: { revision: string; data: T }): void } = {
    revision: "0",
    data: undefined,
    applies: 0,
    apply({ revision, data }) {
      view.revision = revision;
      view.data = data;
      view.applies++;
    },
  };
  return view;
}

afterEach(async () => {
  const closing = links.splice(0).map((link) => {
    const done = closed(link);
    link.close();
    return within(done, "a Tauri link to close", 5000);
  });
  await Promise.allSettled(closing);
  // The sidecars exit after close(); their last events must reach the webview before the
  // IPC mock goes (else Tauri's Channel warns about a callback it no longer has).
  await within(backend?.idle() ?? Promise.resolve(), "the sidecars to exit", 5000).catch(() => {});
  backend?.dispose();
  backend = undefined;
});

describe("Tauri's own API (@tauri-apps/plugin-shell over @tauri-apps/api/mocks) with the real sidecar", () => {
  it("spawns the sidecar with Command.sidecar in raw mode and completes the handshake", async () => {
    const shell = serve(1);
    const link = await tauriLink({ args: ["--log-level", "info"] });
    const client = await connect(link);

    expect(client.server.server.name).toBe("statesync-sidecar");
    expect(client.server.protocolVersion).toBe("1");
    const spawnCall = shell.invocations.find(({ cmd }) => cmd === "plugin:shell|spawn");
    expect(spawnCall?.args).toMatchObject({
      program: PROGRAM,
      args: ["--log-level", "info"],
      options: { sidecar: true, encoding: "raw" },
      onEvent: expect.stringMatching(/^__CHANNEL__:\d+$/),
    });
    expect(link.child.pid).toBe(shell.children.keys().next().value);
    // Child.write carried the handshake: the plugin's stdin_write with a string buffer.
    const writes = shell.invocations.filter(({ cmd }) => cmd === "plugin:shell|stdin_write");
    expect(writes[0]?.args).toMatchObject({ pid: link.child.pid, buffer: expect.stringContaining('"initialize"') });
  });

  it("runs createRevisionSync unchanged: windows converge, big multi-byte states survive raw chunks cut anywhere", async () => {
    const shell = serve(7, { reorder: true });
    const link = await tauriLink();
    const client = await connect(link);
    const topic = "app-config";
    await client.set(topic, { theme: "dark" });

    const views = [renderer<{ theme: string; note?: string }>(), renderer<{ theme: string; note?: string }>()];
    const syncs = views.map((view, i) =>
      createRevisionSync({ topic, connection: client, applier: view, channel: `window-${i}/${topic}` }),
    );
    await Promise.all(syncs.map((sync) => sync.start()));
    for (const view of views) {
      expect(view).toMatchObject({ revision: "1", data: { theme: "dark" }, applies: 1 });
    }

    // A 600 kB state of 1- to 4-byte characters: its bytes come back in chunks of 1 B..8 KiB.
    const note = multiByteText(600_000);
    const { revision } = await client.set(topic, { theme: "light", note });
    await until(() => views.every((view) => view.revision === revision), `both windows at ${revision}`, 10_000);
    for (const view of views) {
      expect(view.data).toEqual({ theme: "light", note });
    }

    // A burst of writes: every window ends on the last one, with coalesced applies.
    const before = views.map((view) => view.applies);
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => client.set(topic, { theme: `t${i}` })));
    const last = results
      .map((result) => result.revision)
      .sort(compareRevisions)
      .at(-1);
    await until(() => views.every((view) => view.revision === String(last)), `both windows at ${last}`, 10_000);
    const final = await client.get(topic);
    const burstApplies = views.map((view, i) => view.applies - (before[i] ?? 0));
    console.info(`tauri: 300 writes → applies per window ${burstApplies.join(", ")}`);
    for (const [i, view] of views.entries()) {
      expect(view.data).toEqual(final.data);
      expect(burstApplies[i]).toBeLessThanOrEqual(300);
    }
    expect((await client.listChannels()).map((status) => status.channel).sort()).toEqual(
      ["window-0/app-config", "window-1/app-config"].sort(),
    );

    // The plugin really did deliver raw byte arrays cut at random places.
    const chunks = shell.stdoutChunks.get(link.child.pid) ?? [];
    expect(chunks.length).toBeGreaterThan(500);
    expect(Math.min(...chunks)).toBe(1);
    expect(Math.max(...chunks)).toBeGreaterThan(1000);
    expect(shell.stats.cutsInsideCharacters).toBeGreaterThan(50);
    expect(shell.stats.reordered).toBeGreaterThan(10); // and Tauri's Channel put them back in order
    console.info(
      `tauri: ${chunks.length} raw stdout chunks (1..${Math.max(...chunks)} B), ` +
        `${shell.stats.cutsInsideCharacters} cut inside a UTF-8 character, ${shell.stats.reordered} delivered out of order`,
    );

    for (const sync of syncs) sync.stop();
    await expect.poll(async () => (await client.listChannels()).length, { timeout: 5000, interval: 20 }).toBe(0);
  });

  it("relays several windows through one webview-owned sidecar (createSidecarHost over the Tauri link)", async () => {
    serve(3);
    const link = await tauriLink();
    const host = createSidecarHost({ link });
    const clients: StateSyncClient[] = [];
    for (let i = 0; i < 3; i++) {
      const [windowEnd, relayEnd] = createMemoryLinkPair();
      host.attachWindow(relayEnd);
      clients.push(await connect(windowEnd));
    }
    const views = clients.map(() => renderer<{ by: number }>());
    const syncs = clients.map((client, i) =>
      createRevisionSync({ topic: "shared", connection: client, applier: views[i] ?? renderer(), channel: `w${i}` }),
    );
    await Promise.all(syncs.map((sync) => sync.start()));
    for (const [i, client] of clients.entries()) {
      const { revision } = await client.set("shared", { by: i });
      await until(() => views.every((view) => view.revision === revision), `all windows at ${revision}`, 5000);
      expect(views.map((view) => view.data)).toEqual([{ by: i }, { by: i }, { by: i }]);
    }
    clients[1]?.close(); // a window goes away: its channel is closed in the sidecar
    const hostClient = await host.connect();
    await expect
      .poll(async () => (await hostClient.listChannels()).map((status) => status.channel).sort(), {
        timeout: 5000,
        interval: 20,
      })
      .toEqual(["w0", "w2"]);
    const exit = closed(link);
    host.close();
    expect(await within(exit, "the sidecar to exit after host.close()")).toBeUndefined();
  });

  it("closes cleanly: close() sends shutdown through Child.write, the plugin reports Terminated with code 0", async () => {
    const shell = serve(5);
    const link = await tauriLink();
    const client = await connect(link);
    const pid = link.child.pid;
    const exit = closed(link);
    link.close();
    expect(await within(exit, "the link to close")).toBeUndefined();
    await until(() => !shell.children.has(pid), "the sidecar process to exit", 5000);
    expect(client.state).toBe("closed");
    expect(shell.invocations.some(({ cmd }) => cmd === "plugin:shell|kill")).toBe(false);
    const lastWrite = shell.invocations.filter(({ cmd }) => cmd === "plugin:shell|stdin_write").at(-1);
    expect(lastWrite?.args.buffer).toContain('"shutdown"');
  });

  it("reports a sidecar that dies: the Terminated signal closes the link with an error and fails pending calls", async () => {
    const shell = serve(9);
    const link = await tauriLink();
    const client = await connect(link);
    const exit = closed(link);
    await link.child.kill(); // plugin:shell|kill: SIGKILL
    const error = await within(exit, "the link to close");
    expect(error?.message).toMatch(/exited \(code null, signal 9\)/);
    await expect(client.get("anything")).rejects.toThrow();
    expect(shell.invocations.some(({ cmd }) => cmd === "plugin:shell|kill")).toBe(true);
  });
});
