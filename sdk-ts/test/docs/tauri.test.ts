import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { connect } from "../../src/client.js";
import { createSidecarHost } from "../../src/relay.js";
import { createRevisionSync } from "../../src/revision-sync.js";
import { until, within } from "../helpers/async.js";
import { sidecarBinary } from "../integration/harness.js";
import { createRustSidecarLink } from "./tauri-rust-link.js";

// docs/tauri.md's state-sync.ts (a webview spawns the sidecar) and sidecar-link.ts (Rust
// does), run against the real binary.
//
// For state-sync.ts, @tauri-apps/plugin-shell is played by a fake that does what the
// plugin's Rust side does for a webview (plugins/shell/src/commands.rs): `spawn` starts the
// program and remembers the child by pid until it exits, raw stdout/stderr chunks become
// "data" events, the exit a "close" event; `Child.kill` kills only a child it remembers.

const shell = vi.hoisted(() => ({
  appData: "",
  children: new Map<number, import("node:child_process").ChildProcess>(),
  exits: new Map<number, Promise<number | string | null>>(),
  spawned: [] as { program: string; args: string[] }[],
}));

vi.mock("@tauri-apps/api/path", async () => {
  const path = await import("node:path");
  return { appDataDir: async () => shell.appData, join: async (...parts: string[]) => path.join(...parts) };
});

vi.mock("@tauri-apps/plugin-shell", async () => {
  const { spawn } = await import("node:child_process");
  const { sidecarBinary } = await import("../integration/harness.js");
  class Emitter {
    readonly listeners = new Map<string, ((payload: never) => void)[]>();
    on(event: string, listener: (payload: never) => void) {
      this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
      return this;
    }
    emit(event: string, payload: unknown) {
      for (const listener of this.listeners.get(event) ?? []) (listener as (p: unknown) => void)(payload);
    }
  }
  class Child {
    constructor(readonly pid: number) {}
    async write(data: string | Uint8Array) {
      shell.children.get(this.pid)?.stdin?.write(data);
    }
    async kill() {
      const child = shell.children.get(this.pid);
      shell.children.delete(this.pid);
      child?.kill("SIGKILL");
    }
  }
  class Command extends Emitter {
    readonly stdout = new Emitter();
    readonly stderr = new Emitter();
    constructor(
      readonly program: string,
      readonly args: string[],
    ) {
      super();
    }
    static sidecar(program: string, args: string[] = []) {
      return new Command(program, args);
    }
    async spawn() {
      shell.spawned.push({ program: this.program, args: this.args });
      const process = spawn(sidecarBinary(), this.args, { stdio: "pipe" });
      const pid = process.pid ?? -1;
      shell.children.set(pid, process);
      process.stdout.on("data", (chunk: Buffer) => this.stdout.emit("data", new Uint8Array(chunk)));
      process.stderr.on("data", (chunk: Buffer) => this.stderr.emit("data", new Uint8Array(chunk)));
      shell.exits.set(
        pid,
        new Promise((resolve) => {
          process.on("close", (code, signal) => {
            shell.children.delete(pid);
            this.emit("close", { code, signal: signal === null ? null : 9 });
            resolve(code ?? signal);
          });
        }),
      );
      return new Child(pid);
    }
  }
  return { Command, Child };
});

/** sessionStorage, for one page load after another. */
class MemoryStorage {
  readonly #items = new Map<string, string>();
  getItem(key: string) {
    return this.#items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.#items.set(key, value);
  }
}

// For sidecar-link.ts, lib.rs's two commands are played through @tauri-apps/api's IPC mock
// as the Rust code does them: `sidecar_start` spawns the binary and sends each stdout line
// (the shell plugin's CommandEvent::Stdout) and then the exit code on the channel;
// `sidecar_write` writes the line to stdin.

interface ChannelArg {
  id: number;
}

let child: ChildProcess | undefined;
let exited: Promise<number | null> = Promise.resolve(null);
const commands: string[] = [];

beforeEach(() => {
  (globalThis as { window?: unknown }).window ??= globalThis;
  mockIPC((cmd, args) => {
    commands.push(cmd);
    const payload = args as Record<string, unknown>;
    if (cmd === "sidecar_start") {
      const events = payload.events as ChannelArg;
      let index = 0;
      const send = (message: unknown) =>
        (
          globalThis as unknown as { __TAURI_INTERNALS__: { runCallback(id: number, data: unknown): void } }
        ).__TAURI_INTERNALS__.runCallback(events.id, { message, index: index++ });
      const process = spawn(sidecarBinary(), [], { stdio: ["pipe", "pipe", "inherit"] });
      child = process;
      const lines = createInterface({ input: process.stdout });
      lines.on("line", (line) => send({ kind: "line", line }));
      exited = new Promise((resolve) => {
        process.on("close", (code) => {
          lines.close();
          send({ kind: "exit", code });
          resolve(code);
        });
      });
      return null;
    }
    if (cmd === "sidecar_write") {
      child?.stdin?.write(payload.line as string);
      return null;
    }
    throw new Error(`unknown command ${cmd}`);
  });
});

afterEach(() => {
  clearMocks();
  child?.kill();
  child = undefined;
  commands.length = 0;
});

describe("docs/tauri.md: the sidecar spawned from a webview", () => {
  let work = "";
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), "state-sync-tauri-"));
    shell.appData = work;
    vi.stubGlobal("sessionStorage", new MemoryStorage());
    vi.spyOn(console, "log").mockImplementation(() => {}); // the page's applier
  });
  afterEach(async () => {
    for (const process of shell.children.values()) process.kill("SIGKILL");
    await Promise.all([...shell.exits.values()]);
    shell.children.clear();
    shell.exits.clear();
    shell.spawned.length = 0;
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
    rmSync(work, { recursive: true, force: true });
  });

  async function loadPage() {
    vi.resetModules();
    return import("./tauri-webview.js");
  }

  it("state-sync.ts syncs through the real sidecar on the --store-file the capability allows", async () => {
    const page = await within(loadPage(), "the page's top-level code");
    expect(shell.spawned).toEqual([
      { program: "binaries/statesync-sidecar", args: ["--store-file", join(work, "state.json")] },
    ]);
    await until(() => page.settings.getLocalRevision() === "1", "the page to apply its write");
    expect(await page.client.get("app-config")).toMatchObject({ revision: "1", data: { theme: "dark" } });
    expect(existsSync(join(work, "state.json"))).toBe(true);
  });

  it("a reloaded page ends the old page's sidecar, so the new one gets the store file's lock", async () => {
    await loadPage();
    const [first] = shell.children.keys();
    const page = await within(loadPage(), "the reloaded page");
    expect(await shell.exits.get(first ?? -1)).toBe("SIGKILL");
    expect(await page.client.get("app-config")).toMatchObject({ revision: "2" }); // the store survived

    // Without the kill (a fresh sessionStorage), the third sidecar finds the file locked.
    const stderr: unknown[] = [];
    vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => void stderr.push(args.join(" ")));
    vi.stubGlobal("sessionStorage", new MemoryStorage());
    await expect(loadPage()).rejects.toThrow();
    const third = [...shell.exits.keys()].at(-1) ?? -1;
    expect(await within(shell.exits.get(third) ?? Promise.resolve(null), "the locked-out sidecar", 10_000)).toBe(1);
    expect(stderr.join("\n")).toMatch(/in use by another process/);
  }, 20_000);
});

describe("docs/tauri.md: the sidecar spawned from Rust", () => {
  it("createRustSidecarLink syncs a window and close() shuts the sidecar down (exit 0)", async () => {
    const link = await createRustSidecarLink();
    const closed: (Error | undefined)[] = [];
    link.onClose((error) => closed.push(error));
    const client = await within(connect(link), "initialize over the link");
    const applied: unknown[] = [];
    const sync = createRevisionSync({
      topic: "app-config",
      connection: client,
      applier: { apply: ({ data }) => void applied.push(data) },
    });
    await within(sync.start(), "start");
    await client.set("app-config", { theme: "dark" });
    await until(() => applied.length === 1, "the write to be applied");
    expect(applied).toEqual([{ theme: "dark" }]);

    link.close();
    expect(await within(exited, "the sidecar to exit")).toBe(0);
    expect(closed).toEqual([undefined]);
    expect(commands[0]).toBe("sidecar_start");
    expect(commands.slice(1).every((cmd) => cmd === "sidecar_write")).toBe(true);
  });

  it("serves several windows through the relay in the owning webview", async () => {
    const host = createSidecarHost({ link: await createRustSidecarLink() });
    const [first, second] = await Promise.all([host.connect(), host.connect()]);
    if (first === undefined || second === undefined) throw new Error("two clients");
    const seen: unknown[] = [];
    const sync = createRevisionSync({
      topic: "app-config",
      connection: second,
      applier: { apply: ({ data }) => void seen.push(data) },
    });
    await sync.start();
    await first.set("app-config", { theme: "light" });
    await until(() => seen.length === 1, "the other window to apply the write");
    host.close();
    expect(await within(exited, "the sidecar to exit")).toBe(0);
  });

  it("a sidecar that dies closes the link with its exit code", async () => {
    const link = await createRustSidecarLink();
    const closed: (Error | undefined)[] = [];
    link.onClose((error) => closed.push(error));
    child?.kill("SIGKILL");
    await within(exited, "the sidecar to exit");
    await until(() => closed.length === 1, "the link to close");
    expect(String(closed[0])).toMatch(/statesync-sidecar exited \(code null\)/);
    expect(() => link.send({ jsonrpc: "2.0", method: "invalidate", params: {} })).toThrow(/closed/);
  });
});
