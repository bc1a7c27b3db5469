import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";

/**
 * The Rust half of `@tauri-apps/plugin-shell`, played by this process, so that the
 * plugin's own JavaScript (`Command.sidecar`, `spawn`, `Child.write`, `Child.kill`, the
 * stdout/stderr/close events) runs unchanged against a real child process.
 *
 * What the real plugin does (plugins-workspace `plugins/shell/src/commands.rs` and
 * `process/mod.rs`, and tauri `ipc/channel.rs`), and this backend copies:
 *
 * - `plugin:shell|spawn {program, args, options, onEvent}`: `options.sidecar` makes the
 *   program an `externalBin` name (anything else is `SidecarNotAllowed`); the answer is the
 *   pid. `onEvent` reaches Rust serialised, as the string `__CHANNEL__:<id>`.
 * - Events are `JSCommandEvent`, serialised with serde: `{event: "Stdout"|"Stderr",
 *   payload}`, `{event: "Terminated", payload: {code, signal}}`, `{event: "Error", payload}`.
 *   With `encoding: "raw"` the payload is `Vec<u8>`, which serde_json writes as an array of
 *   numbers (not a Uint8Array); the pipe is read in arbitrary chunks (a BufReader's fill).
 *   In text mode it is one line per event, its newline stripped.
 * - A channel message reaches the webview as `{message, index}` through the callback the
 *   JS Channel registered (the index lets the Channel reorder late fetches), and
 *   `{end: true, index}` once the Rust side drops the channel (after `Terminated`).
 * - `plugin:shell|stdin_write {pid, buffer}`: a string or a byte array, written whole.
 * - `plugin:shell|kill {cmd: "killChild", pid}`: SIGKILL, the child forgotten.
 */
export interface ShellBackendOptions {
  /** `externalBin` names → the binary each runs, e.g. {"binaries/statesync-sidecar": "/…/bin/statesync-sidecar"}. */
  externalBin: Record<string, string>;
  /** Random numbers in [0, 1) that decide where raw chunks are cut; seed it for a reproducible run. */
  random: () => number;
  /** The largest raw chunk delivered (the plugin's BufReader holds 8 KiB). */
  maxChunkBytes?: number;
  /** Swap neighbouring channel messages now and then, as late IPC fetches do; Tauri's Channel reorders them. */
  reorder?: boolean;
}

export interface ShellBackend extends ShellCommands {
  /** Every IPC command the plugin invoked, in order, with its args as Rust received them. */
  readonly invocations: { cmd: string; args: Record<string, unknown> }[];
  /** Raw chunk sizes delivered as Stdout events, per pid. */
  readonly stdoutChunks: Map<number, number[]>;
  /** How many raw stdout cuts fell inside a UTF-8 character, and how many messages were swapped. */
  readonly stats: { cutsInsideCharacters: number; reordered: number };
  readonly children: Map<number, ChildProcess>;
  /** Resolves once every child spawned so far has exited and its last event reached the webview. */
  idle(): Promise<void>;
  /** Kills every child still running and removes the IPC mock. */
  dispose(): void;
}

interface TauriInternals {
  runCallback(id: number, data: unknown): void;
}

/** Hands a channel message to the webview that created the channel (its `runCallback`). */
export type RunCallback = (id: number, data: unknown) => void;

export interface ShellCommands {
  /**
   * Runs one of the plugin's IPC commands (`plugin:shell|…`) for a webview; its channel
   * messages go to that webview through `runCallback`, as Tauri sends a Channel's messages
   * to the webview that made it.
   */
  handle(cmd: string, payload: unknown, runCallback: RunCallback): unknown;
}

// @tauri-apps/api/mocks installs itself on `window`; in Node the global object stands in.
const globals = globalThis as unknown as { window?: unknown };
globals.window ??= globalThis;

const internals = (): Partial<TauriInternals> | undefined =>
  (globalThis as unknown as { __TAURI_INTERNALS__?: Partial<TauriInternals> }).__TAURI_INTERNALS__;

/** The plugin's Rust half for this process's own global `window` (mockIPC), as one webview. */
export function serveShellPlugin(options: ShellBackendOptions): ShellBackend {
  const backend = createShellBackend(options);
  mockIPC((cmd, payload) => backend.handle(cmd, payload, (id, data) => internals()?.runCallback?.(id, data)));
  return {
    ...backend,
    dispose() {
      backend.dispose();
      clearMocks();
    },
  };
}

/**
 * The plugin's Rust half, app-wide, without installing an IPC mock: the caller routes each
 * webview's `plugin:shell|…` invokes to `handle` (several webviews, each its own realm).
 * Like the real plugin, a child outlives the page that spawned it; its events go to that
 * page's callbacks, which a reloaded page no longer has.
 */
export function createShellBackend(options: ShellBackendOptions): ShellBackend {
  const maxChunk = options.maxChunkBytes ?? 8192;
  const invocations: ShellBackend["invocations"] = [];
  const stdoutChunks = new Map<number, number[]>();
  const children = new Map<number, ChildProcess>();
  const running = new Set<ChildProcess>();
  const ended = new Set<Promise<void>>();
  const stats = { cutsInsideCharacters: 0, reordered: 0 };

  /** A JS Channel as Rust holds it: messages numbered, delivered asynchronously, then `end`. */
  const rustChannel = (serialised: unknown, runCallback: RunCallback) => {
    const match = typeof serialised === "string" ? /^__CHANNEL__:(\d+)$/.exec(serialised) : null;
    if (match === null) {
      throw new Error(
        `invalid channel value \`${String(serialised)}\`, expected a string in the \`__CHANNEL__:ID\` format`,
      );
    }
    const id = Number(match[1]);
    let index = 0;
    let held: { message: unknown; index: number } | undefined;
    // Asynchronous, like the webview's fetch of each message; dropped once the mock is gone.
    const deliver = (data: unknown) => setImmediate(() => runCallback(id, data));
    return {
      send(event: unknown) {
        // serde_json's view of the event: plain JSON, byte vectors as number arrays.
        const message = { message: JSON.parse(JSON.stringify(event)), index: index++ };
        if (held !== undefined) {
          deliver(message); // the later one first: the Channel must put them back in order
          deliver(held);
          held = undefined;
          stats.reordered++;
        } else if (options.reorder === true && options.random() < 0.2) {
          held = message; // overtaken by the next message sent in this turn, if any
          setImmediate(() => {
            if (held === message) {
              held = undefined;
              deliver(message);
            }
          });
        } else {
          deliver(message);
        }
      },
      /** Resolves once the `end` message was handed to the webview. */
      end(): Promise<void> {
        if (held !== undefined) {
          deliver(held);
          held = undefined;
        }
        deliver({ end: true, index });
        return new Promise((resolve) => setImmediate(resolve)); // after the deliveries queued above
      },
    };
  };

  const spawnCommand = (args: Record<string, unknown>, runCallback: RunCallback): number => {
    const program = String(args.program);
    const commandOptions = (args.options ?? {}) as {
      sidecar?: boolean;
      cwd?: string;
      env?: Record<string, string> | null;
      encoding?: string;
    };
    const binary = options.externalBin[program];
    if (commandOptions.sidecar !== true || binary === undefined) {
      throw `sidecar not configured under \`tauri.conf.json > bundle > externalBin\`: ${program}`;
    }
    const raw = commandOptions.encoding === "raw";
    if (commandOptions.encoding !== undefined && !raw && commandOptions.encoding !== "utf-8") {
      throw `unknown encoding ${commandOptions.encoding}`;
    }
    const channel = rustChannel(args.onEvent, runCallback);
    const child = spawn(binary, (args.args as string[] | undefined) ?? [], {
      stdio: ["pipe", "pipe", "pipe"],
      ...(commandOptions.cwd === undefined ? {} : { cwd: commandOptions.cwd }),
      // env absent or {}: the app's environment plus these; null: cleared.
      env: commandOptions.env === null ? {} : { ...process.env, ...(commandOptions.env ?? {}) },
    });
    const pid = child.pid;
    if (pid === undefined) {
      throw `failed to spawn ${binary}`;
    }
    children.set(pid, child);
    running.add(child);
    const chunks: number[] = [];
    stdoutChunks.set(pid, chunks);

    const pipe = (stream: NodeJS.ReadableStream, event: "Stdout" | "Stderr", sizes?: number[]) => {
      let partialLine: Buffer = Buffer.alloc(0);
      stream.on("data", (data: Buffer) => {
        if (raw) {
          for (let at = 0; at < data.length; ) {
            // 1 byte up to maxChunk, biased towards small cuts so that UTF-8 sequences split often.
            const size = Math.max(1, Math.floor(options.random() ** 3 * maxChunk));
            const piece = data.subarray(at, at + size);
            at += piece.length;
            if (sizes !== undefined) {
              sizes.push(piece.length);
              if (at < data.length && ((data[at] ?? 0) & 0xc0) === 0x80) {
                stats.cutsInsideCharacters++; // the next chunk starts with a continuation byte
              }
            }
            channel.send({ event, payload: Array.from(piece) });
          }
          return;
        }
        partialLine = Buffer.concat([partialLine, data]);
        for (let newline = partialLine.indexOf(10); newline !== -1; newline = partialLine.indexOf(10)) {
          channel.send({ event, payload: partialLine.subarray(0, newline).toString("utf8").replace(/\r$/, "") });
          partialLine = partialLine.subarray(newline + 1);
        }
      });
    };
    if (child.stdout === null || child.stderr === null) {
      throw "spawned without pipes";
    }
    pipe(child.stdout, "Stdout", chunks);
    pipe(child.stderr, "Stderr");
    child.on("error", (error) => channel.send({ event: "Error", payload: error.message }));
    let markEnded: () => void = () => {};
    ended.add(new Promise<void>((resolve) => (markEnded = resolve)));
    child.on("close", (code, signal) => {
      children.delete(pid);
      channel.send({
        event: "Terminated",
        payload: { code, signal: signal === null ? null : constants.signals[signal] },
      });
      void channel.end().then(() => {
        running.delete(child);
        markEnded();
      });
    });
    return pid;
  };

  const stdinWrite = (args: Record<string, unknown>): Promise<null> => {
    const child = children.get(Number(args.pid));
    if (child?.stdin == null) {
      return Promise.resolve(null); // the plugin ignores writes to a pid it no longer knows
    }
    const buffer = args.buffer;
    const bytes = typeof buffer === "string" ? Buffer.from(buffer, "utf8") : Buffer.from(buffer as number[]);
    const stdin = child.stdin;
    return new Promise((resolve, reject) => {
      stdin.write(bytes, (error) => (error ? reject(String(error)) : resolve(null)));
    });
  };

  const handle = (cmd: string, payload: unknown, runCallback: RunCallback): unknown => {
    // What Rust receives: the args as JSON (a Channel becomes "__CHANNEL__:<id>").
    const args = JSON.parse(JSON.stringify(payload ?? {})) as Record<string, unknown>;
    invocations.push({ cmd, args });
    switch (cmd) {
      case "plugin:shell|spawn":
        return spawnCommand(args, runCallback);
      case "plugin:shell|stdin_write":
        return stdinWrite(args);
      case "plugin:shell|kill": {
        const pid = Number(args.pid);
        children.get(pid)?.kill("SIGKILL");
        children.delete(pid);
        return null;
      }
      default:
        throw `command ${cmd} not found`;
    }
  };

  return {
    handle,
    invocations,
    stdoutChunks,
    stats,
    children,
    async idle() {
      await Promise.all(ended);
    },
    dispose() {
      for (const child of running) {
        child.kill("SIGKILL");
      }
    },
  };
}
