import type { EventEmitter } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { StateSyncClient } from "../../src/client.js";
import type { SidecarHost } from "../../src/relay.js";
import { until, within } from "../helpers/async.js";
import { sidecarBinary } from "../integration/harness.js";

// docs/electron.md's main.ts, preload.ts and renderer.ts, run as they are against the real
// sidecar. Electron itself is played by this fake: MessageChannelMain is Node's
// MessageChannel (a MessagePortMain is an EventEmitter with postMessage/start/close and a
// "close" event, as Node's ports are), webContents.postMessage hands the port to the
// preload's ipcRenderer listener, and `window` is one page's EventTarget.

const electron = vi.hoisted(() => {
  const state = {
    isPackaged: false,
    appPath: "",
    userData: "",
    ipcListeners: new Map<string, ((event: { ports: unknown[] }) => void)[]>(),
  };
  return { state };
});

vi.mock("electron", async () => {
  const { EventEmitter } = await import("node:events");
  const { MessageChannel } = await import("node:worker_threads");
  const { state } = electron;
  class FakeWebContents extends EventEmitter {
    postMessage(channel: string, _message: unknown, transfer: unknown[] = []) {
      for (const listener of state.ipcListeners.get(channel) ?? []) listener({ ports: transfer });
    }
  }
  class BrowserWindow extends EventEmitter {
    readonly webContents = new FakeWebContents();
    async loadFile() {}
  }
  return {
    app: {
      get isPackaged() {
        return state.isPackaged;
      },
      getAppPath: () => state.appPath,
      getPath: () => state.userData,
      whenReady: () => new Promise(() => {}), // the test drives main.ts's exported functions itself
      on() {},
    },
    BrowserWindow,
    MessageChannelMain: MessageChannel,
    ipcRenderer: {
      on(channel: string, listener: (event: { ports: unknown[] }) => void) {
        state.ipcListeners.set(channel, [...(state.ipcListeners.get(channel) ?? []), listener]);
      },
    },
  };
});

const triples: Record<string, string> = {
  "darwin-arm64": "aarch64-apple-darwin",
  "darwin-x64": "x86_64-apple-darwin",
  "linux-arm64": "aarch64-unknown-linux-gnu",
  "linux-x64": "x86_64-unknown-linux-gnu",
  "win32-arm64": "aarch64-pc-windows-msvc",
  "win32-x64": "x86_64-pc-windows-msvc",
};
const triple = triples[`${process.platform}-${process.arch}`] ?? "unknown";
const exe = process.platform === "win32" ? ".exe" : "";

let work = "";
const applied: unknown[] = [];
const warned: unknown[] = []; // the page's catch
let started = 0; // pages past `await settings.start()` (they look for the #dark button next)
const page = Object.assign(new EventTarget(), {
  postMessage(data: unknown, _targetOrigin: string, ports: unknown[] = []) {
    page.dispatchEvent(Object.assign(new Event("message"), { data, ports, source: page }));
  },
});

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "state-sync-electron-"));
  electron.state.appPath = join(work, "app");
  electron.state.userData = join(work, "userData");
  mkdirSync(join(electron.state.appPath, "binaries"), { recursive: true });
  mkdirSync(electron.state.userData);
  // Where `task dist`'s binary for this machine sits while developing.
  symlinkSync(sidecarBinary(), join(electron.state.appPath, "binaries", `statesync-sidecar-${triple}${exe}`));
  vi.stubGlobal("window", page);
  vi.stubGlobal("document", {
    querySelector() {
      started++;
      return null;
    },
  });
  vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => void warned.push(args));
  vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
    if (args[0] === "app-config is now") applied.push(args[1]);
  });
});

afterAll(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
  if (work !== "") rmSync(work, { recursive: true, force: true });
});

describe("docs/electron.md", () => {
  it("main.ts finds the sidecar in ./binaries in development and in the resources folder when packaged", async () => {
    const { sidecarPath } = await import("./electron-main.js");
    expect(sidecarPath()).toBe(join(electron.state.appPath, "binaries", `statesync-sidecar-${triple}${exe}`));
    electron.state.isPackaged = true;
    Object.defineProperty(process, "resourcesPath", { value: join(work, "resources"), configurable: true });
    try {
      expect(sidecarPath()).toBe(join(work, "resources", `statesync-sidecar-${triple}${exe}`));
    } finally {
      Reflect.deleteProperty(process, "resourcesPath");
      electron.state.isPackaged = false;
    }
  });

  it("syncs a window through preload.ts and renderer.ts; a reload and a close leave no channel behind", async () => {
    const { connectWindow, startSidecar } = await import("./electron-main.js");
    await import("./electron-preload.js");
    await import("./electron-renderer.js");
    const { BrowserWindow } = await import("electron");

    const host: SidecarHost = startSidecar();
    const hostClient: StateSyncClient = await within(host.connect(), "the main process's client");
    await hostClient.set("app-config", { theme: "dark" });

    const win = new BrowserWindow();
    connectWindow(host, win);
    win.webContents.emit("did-finish-load");
    await until(() => applied.length === 1, "the page to apply the stored state", 15_000);
    expect(applied).toEqual([{ theme: "dark" }]);

    await hostClient.set("app-config", { theme: "light" });
    await until(() => applied.length === 2, "the page to apply the main process's write", 15_000);
    expect(applied[1]).toEqual({ theme: "light" });

    // A reload: the old page's channel is closed, the new page gets a port and the state.
    win.webContents.emit("did-finish-load");
    await until(() => applied.length === 3, "the reloaded page to apply the state", 15_000);
    expect(applied[2]).toEqual({ theme: "light" });
    await until(() => started === 2, "the reloaded page's start() to resolve", 15_000);
    await expectChannels(hostClient, 1);

    (win as unknown as EventEmitter).emit("closed");
    await expectChannels(hostClient, 0);

    host.close();
    await until(() => hostClient.state === "closed", "the sidecar to shut down", 15_000);
    expect(warned).toEqual([]);
  });
});

async function expectChannels(client: StateSyncClient, count: number) {
  let channels = -1;
  for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
    channels = (await client.listChannels()).length;
    if (channels === count) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(channels, "open channels in the sidecar").toBe(count);
}
