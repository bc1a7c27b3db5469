import { webcrypto } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import { build } from "esbuild";
import { createShellBackend, type ShellBackend } from "../tauri-shell-backend.js";

// A Tauri app without Tauri: each webview is its own JavaScript realm (a node:vm context
// with its own globals, its own copy of @tauri-apps/api, @tauri-apps/plugin-shell and the
// SDK, its own `__TAURI_INTERNALS__` installed by @tauri-apps/api/mocks' mockIPC and
// mockWindows), and this file plays Tauri's core between them:
//
// - the event plugin (`plugin:event|listen/unlisten/emit/emit_to`), with the target rules
//   of tauri's `AppManager::emit_to` and `Listeners::emit_js_filter`: a listener whose
//   target is `Any` hears every event; `emit` reaches every listener; `emitTo(label)`
//   (target `AnyLabel`) reaches listeners whose target names that label;
// - window destruction: the page's listeners go, then `tauri://destroyed` is emitted to the
//   window's own targets (`Window`/`WebviewWindow` with its label), as
//   `manager/window.rs`'s `emit_to_window` does;
// - a reload: the page's realm and listeners go (Tauri drops a navigating webview's
//   listeners), a new realm starts under the same label, sessionStorage survives;
// - the shell plugin (tauri-shell-backend.ts, app-wide: a child outlives the page that
//   spawned it), the path plugin's appDataDir/join, and the app's own Rust commands.
//
// mockIPC's own `shouldMockEvents` serves events inside one realm only and has no emitTo,
// so the realms' event IPC comes here instead, which is what Tauri's core does.

const sdk = fileURLToPath(new URL("../../../", import.meta.url));

/** What each realm's bundle exports: Tauri's own modules, the SDK and the guide's snippets. */
export interface RealmApi {
  mockIPC: typeof import("@tauri-apps/api/mocks").mockIPC;
  mockWindows: typeof import("@tauri-apps/api/mocks").mockWindows;
  createTauriRelay: typeof import("../../../src/tauri.js").createTauriRelay;
  connectTauriWindow: typeof import("../../../src/tauri.js").connectTauriWindow;
  createRevisionSync: typeof import("../../../src/index.js").createRevisionSync;
  syncTopic: typeof import("../../docs/tauri-window.js").syncTopic;
  startStateSync: typeof import("../../docs/tauri-owner.js").startStateSync;
}

let bundled: Promise<string> | undefined;

/** One IIFE bundle, evaluated afresh in every realm (so no module is shared between pages). */
function realmBundle(): Promise<string> {
  bundled ??= build({
    stdin: {
      contents: [
        'export { mockIPC, mockWindows } from "@tauri-apps/api/mocks";',
        'export { createTauriRelay, connectTauriWindow } from "@state-sync/sdk/tauri";',
        'export { createRevisionSync } from "@state-sync/sdk";',
        'export { syncTopic } from "./test/docs/tauri-window.ts";',
        'export { startStateSync } from "./test/docs/tauri-owner.ts";',
      ].join("\n"),
      resolveDir: sdk,
      loader: "ts",
    },
    bundle: true,
    write: false,
    format: "iife",
    globalName: "stateSyncRealm",
    platform: "browser",
    target: "es2022",
    logLevel: "silent",
    plugins: [
      {
        name: "state-sync-sdk-from-src",
        setup(plugin) {
          // The snippets import the package by name, as an app does; here it is src/.
          plugin.onResolve({ filter: /^@state-sync\/sdk(\/.*)?$/ }, ({ path }) => ({
            path: join(
              sdk,
              "src",
              `${path === "@state-sync/sdk" ? "index" : path.slice("@state-sync/sdk/".length)}.ts`,
            ),
          }));
        },
      },
    ],
  }).then((result) => result.outputFiles[0]?.text ?? "");
  return bundled;
}

type EventTarget =
  | { kind: "Any" }
  | { kind: "AnyLabel"; label: string }
  | { kind: "App" }
  | { kind: "Window"; label: string }
  | { kind: "Webview"; label: string }
  | { kind: "WebviewWindow"; label: string };

interface Listener {
  id: number;
  page: Page;
  event: string;
  target: EventTarget;
  handler: number;
}

/** One page load in one webview. */
export interface Page {
  readonly label: string;
  /** 1 for the first load of the label, 2 after a reload, … */
  readonly load: number;
  readonly api: RealmApi;
  alive: boolean;
  /** Runs a callback the realm registered (transformCallback), with data as the realm's own JSON. */
  runCallback(id: number, data: unknown): void;
  /** Fires the page's `pagehide` (a reload or a navigation away). */
  hide(): void;
  kill(): void;
}

/** Every event the core delivered to a page, in order, for the tests' checks. */
export interface Delivery {
  seq: number;
  label: string;
  load: number;
  event: string;
  payload: unknown;
}

export interface AppOptions {
  /** The real statesync-sidecar, run for `binaries/statesync-sidecar`. */
  sidecar: string;
  /** What appDataDir() resolves to. */
  appDataDir: string;
  /** Decides where raw stdout chunks are cut. */
  random: () => number;
  /** Commands a window's capabilities do not allow (Tauri refuses them before they run). */
  denied?: (label: string, cmd: string) => boolean;
  /** The app's own Rust commands (invoke): answer, or throw a string as a failed command. */
  commands?: (cmd: string, args: Record<string, unknown>, label: string) => unknown;
}

const EVENT_NAME = /^[A-Za-z0-9\-/:_]+$/; // tauri's EventName::new

export class TauriApp {
  readonly shell: ShellBackend;
  readonly pages = new Map<string, Page>();
  /** Events emitted by pages (emit/emitTo), in order. */
  readonly emitted: {
    seq: number;
    from: string;
    load: number;
    target: EventTarget;
    event: string;
    payload: unknown;
  }[] = [];
  readonly delivered: Delivery[] = [];
  readonly #options: AppOptions;
  readonly #listeners = new Map<number, Listener>();
  readonly #storage = new Map<string, Map<string, string>>();
  /** One localStorage for every webview of the app (one origin). */
  readonly #localStorage = new Map<string, string>();
  readonly #loads = new Map<string, number>();
  #nextEventId = 1;
  #seq = 0;

  constructor(options: AppOptions) {
    this.#options = options;
    this.shell = createShellBackend({
      externalBin: { "binaries/statesync-sidecar": options.sidecar },
      random: options.random,
    });
  }

  /** Opens a window (a new webview) and loads its page. */
  async open(label: string): Promise<Page> {
    if (this.pages.has(label)) {
      throw new Error(`a window labelled "${label}" already exists`);
    }
    return this.#load(label);
  }

  /** Reloads a window's page: a new realm under the same label; `pagehide` first if asked. */
  async reload(label: string, options: { pagehide: boolean }): Promise<Page> {
    const page = this.#page(label);
    if (options.pagehide) {
      page.hide();
    }
    this.#unload(page);
    return this.#load(label);
  }

  /** Destroys a window: its page dies without `pagehide`, then `tauri://destroyed`. */
  destroy(label: string): void {
    const page = this.#page(label);
    this.#unload(page);
    this.pages.delete(label);
    this.#storage.delete(label);
    this.#emit(
      "tauri://destroyed",
      null,
      (target) => (target.kind === "Window" || target.kind === "WebviewWindow") && target.label === label,
    );
  }

  /** What Rust's `app.emit(event, payload)` does. */
  emitFromRust(event: string, payload: unknown): void {
    this.#emit(event, payload, () => true);
  }

  /** A position in the app's record of emits and deliveries: later entries have a larger seq. */
  now(): number {
    return this.#seq++;
  }

  dispose(): void {
    for (const page of this.pages.values()) {
      this.#unload(page);
    }
    this.pages.clear();
    this.shell.dispose();
  }

  #page(label: string): Page {
    const page = this.pages.get(label);
    if (page === undefined) {
      throw new Error(`no window labelled "${label}"`);
    }
    return page;
  }

  #unload(page: Page): void {
    page.kill();
    for (const [id, listener] of this.#listeners) {
      if (listener.page === page) {
        this.#listeners.delete(id);
      }
    }
  }

  async #load(label: string): Promise<Page> {
    const load = (this.#loads.get(label) ?? 0) + 1;
    this.#loads.set(label, load);
    const items = this.#storage.get(label) ?? new Map<string, string>();
    this.#storage.set(label, items);
    const timers = new Set<ReturnType<typeof setTimeout>>();
    const pageEvents = new EventTarget();
    let alive = true;
    const sandbox = {
      console,
      TextEncoder,
      TextDecoder,
      URL,
      structuredClone,
      queueMicrotask,
      crypto: {
        getRandomValues: <T extends ArrayBufferView>(array: T): T => webcrypto.getRandomValues(array as never),
      },
      sessionStorage: {
        getItem: (key: string) => items.get(key) ?? null,
        setItem: (key: string, value: string) => void items.set(key, String(value)),
        removeItem: (key: string) => void items.delete(key),
      },
      localStorage: {
        getItem: (key: string) => this.#localStorage.get(key) ?? null,
        setItem: (key: string, value: string) => void this.#localStorage.set(key, String(value)),
        removeItem: (key: string) => void this.#localStorage.delete(key),
      },
      addEventListener: (type: string, listener: () => void) => pageEvents.addEventListener(type, listener),
      removeEventListener: (type: string, listener: () => void) => pageEvents.removeEventListener(type, listener),
      // A dead page runs nothing more: its timers are dropped with it.
      setTimeout: (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (alive) fn(...args);
        }, ms);
        timers.add(timer);
        return timer;
      },
      clearTimeout: (timer: ReturnType<typeof setTimeout>) => {
        timers.delete(timer);
        clearTimeout(timer);
      },
    };
    const context = vm.createContext(sandbox);
    vm.runInContext("globalThis.window = globalThis;", context);
    vm.runInContext(await realmBundle(), context, { filename: `tauri-webview-${label}-${load}.js` });
    const api = vm.runInContext("stateSyncRealm", context) as RealmApi;
    const parse = vm.runInContext("JSON.parse", context) as (text: string) => unknown;
    const internals = () =>
      (vm.runInContext("window.__TAURI_INTERNALS__", context) ?? {}) as {
        runCallback?: (id: number, data: unknown) => void;
      };
    const page: Page = {
      label,
      load,
      api,
      get alive() {
        return alive;
      },
      set alive(value) {
        alive = value;
      },
      runCallback(id, data) {
        if (alive) internals().runCallback?.(id, parse(JSON.stringify(data)));
      },
      hide() {
        pageEvents.dispatchEvent(new Event("pagehide"));
      },
      kill() {
        alive = false;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
      },
    };
    api.mockWindows(label);
    api.mockIPC((cmd, payload) => this.#invoke(page, cmd, payload));
    this.pages.set(label, page);
    return page;
  }

  #invoke(page: Page, cmd: string, payload: unknown): unknown {
    if (!page.alive) {
      return new Promise(() => {}); // a page that is gone never hears back
    }
    if (this.#options.denied?.(page.label, cmd) === true) {
      const [plugin, command] = cmd.replace(/^plugin:/, "").split("|");
      throw `${plugin}.${command} not allowed on window "${page.label}"`; // what Tauri's ACL answers, in short
    }
    if (cmd.startsWith("plugin:shell|")) {
      return this.shell.handle(cmd, payload, (id, data) => page.runCallback(id, data));
    }
    // What Rust receives: JSON (serde).
    const args = JSON.parse(JSON.stringify(payload ?? {})) as Record<string, unknown>;
    switch (cmd) {
      case "plugin:event|listen": {
        const event = checkEventName(args.event);
        const id = this.#nextEventId++;
        this.#listeners.set(id, { id, page, event, target: args.target as EventTarget, handler: Number(args.handler) });
        return id;
      }
      case "plugin:event|unlisten":
        this.#listeners.delete(Number(args.eventId));
        return null;
      case "plugin:event|emit": {
        const event = checkEventName(args.event);
        this.emitted.push({
          seq: this.#seq++,
          from: page.label,
          load: page.load,
          target: { kind: "Any" },
          event,
          payload: args.payload,
        });
        this.#emit(event, args.payload, () => true);
        return null;
      }
      case "plugin:event|emit_to": {
        const event = checkEventName(args.event);
        const target = args.target as EventTarget;
        this.emitted.push({
          seq: this.#seq++,
          from: page.label,
          load: page.load,
          target,
          event,
          payload: args.payload,
        });
        this.#emit(event, args.payload, (candidate) => matchesTarget(target, candidate));
        return null;
      }
      case "plugin:path|resolve_directory":
        if (args.directory !== 14) throw `only BaseDirectory.AppData (14) is played here, not ${args.directory}`;
        return this.#options.appDataDir;
      case "plugin:path|join":
        return join(...(args.paths as string[]));
    }
    if (this.#options.commands === undefined) {
      throw `command ${cmd} not found`;
    }
    return this.#options.commands(cmd, args, page.label);
  }

  /** Delivers to each matching listener, asynchronously (as the webview's eval is) and in order. */
  #emit(event: string, payload: unknown, filter: (target: EventTarget) => boolean): void {
    for (const listener of [...this.#listeners.values()]) {
      if (listener.event !== event || !(listener.target.kind === "Any" || filter(listener.target))) {
        continue;
      }
      setImmediate(() => {
        if (!this.#listeners.has(listener.id) || !listener.page.alive) {
          return;
        }
        const { label, load } = listener.page;
        this.delivered.push({ seq: this.#seq++, label, load, event, payload });
        listener.page.runCallback(listener.handler, { event, id: listener.id, payload });
      });
    }
  }
}

function checkEventName(event: unknown): string {
  if (typeof event !== "string" || !EVENT_NAME.test(event)) {
    throw "Event name must include only alphanumeric characters, `-`, `/`, `:` and `_`.";
  }
  return event;
}

/** tauri's `AppManager::emit_to` filter: does an emit to `target` reach a listener on `candidate`? */
function matchesTarget(target: EventTarget, candidate: EventTarget): boolean {
  if (target.kind === "Any") {
    return true;
  }
  if (target.kind === "App") {
    return candidate.kind === "App";
  }
  if (!("label" in candidate)) {
    return false;
  }
  if (target.kind === "AnyLabel") {
    return candidate.label === target.label;
  }
  return (candidate.kind === "AnyLabel" || candidate.kind === target.kind) && candidate.label === target.label;
}
