import { type Child, Command } from "@tauri-apps/plugin-shell";
import { createLineDecoder, encodeLine } from "../framing.js";
import type { Link } from "../link.js";
import { LinkListeners } from "../link-listeners.js";

export interface TauriLinkOptions {
  /** The sidecar as named in `bundle.externalBin`; "binaries/statesync-sidecar" by default. */
  program?: string;
  args?: string[];
  cwd?: string;
  env?: Record<string, string>;
  /** Gets the sidecar's stderr (its logs) as the plugin delivers it. */
  onStderr?: (text: string) => void;
  /** Gets a stdout line that is not JSON (it is skipped). */
  onInvalidLine?: (line: string, error: unknown) => void;
  /** How long close() waits for the sidecar to exit after `shutdown` before killing it; 2000 ms. */
  shutdownGraceMs?: number;
}

export interface TauriLink extends Link {
  readonly child: Child;
}

/**
 * Spawns the sidecar with the Tauri v2 shell plugin (`Command.sidecar`) and speaks NDJSON
 * over its stdio. stdout is read in raw mode: the plugin then emits arbitrary byte chunks,
 * which the link decodes and reassembles into lines itself. In text mode the plugin emits
 * one line per event (with or without its newline); the link accepts that too.
 */
export async function createTauriLink(options: TauriLinkOptions = {}): Promise<TauriLink> {
  const command = Command.sidecar(options.program ?? "binaries/statesync-sidecar", options.args ?? [], {
    encoding: "raw",
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  const listeners = new LinkListeners();
  let closed = false;
  let exited = false;
  let markExited: () => void = () => {};
  const exit = new Promise<void>((resolve) => {
    markExited = () => {
      exited = true;
      resolve();
    };
  });

  const decoder = createLineDecoder({
    onMessage(message) {
      listeners.deliver(message);
    },
    acceptUnterminatedObjects: true,
    ...(options.onInvalidLine === undefined ? {} : { onInvalidLine: options.onInvalidLine }),
  });
  const stdoutText = new TextDecoder(); // streaming: a UTF-8 character may span chunks
  command.stdout.on("data", (chunk: RawChunk) => {
    decoder.push(typeof chunk === "string" ? chunk : stdoutText.decode(bytesOf(chunk), { stream: true }));
  });
  const stderrText = new TextDecoder();
  command.stderr.on("data", (chunk: RawChunk) => {
    options.onStderr?.(typeof chunk === "string" ? chunk : stderrText.decode(bytesOf(chunk), { stream: true }));
  });

  const finish = (error?: Error): void => {
    if (closed) {
      return;
    }
    closed = true;
    listeners.closed(error);
  };
  command.on("close", ({ code, signal }) => {
    markExited();
    finish(code === 0 ? undefined : new Error(`statesync-sidecar exited (code ${code}, signal ${signal})`));
  });
  command.on("error", (message) => {
    markExited();
    finish(new Error(`statesync-sidecar: ${message}`));
  });

  const child = await command.spawn();
  // child.write is asynchronous; chaining keeps the messages in order and lets a failed
  // write close the link instead of going unnoticed.
  let writes: Promise<void> = Promise.resolve();

  return {
    child,
    send(message) {
      if (closed) {
        throw new Error("the sidecar link is closed");
      }
      const line = encodeLine(message);
      writes = writes
        .then(() => child.write(line))
        .catch((error: unknown) => {
          finish(new Error(`writing to statesync-sidecar failed: ${String(error)}`));
          void child.kill().catch(() => {});
        });
    },
    onMessage: listeners.onMessage,
    onClose: listeners.onClose,
    close() {
      if (closed) {
        return;
      }
      finish();
      // The shell plugin cannot close stdin alone: ask the sidecar to exit, kill it if
      // it has not after the grace period.
      const shutdown = encodeLine({
        jsonrpc: "2.0",
        id: "state-sync/tauri-link/shutdown",
        method: "shutdown",
        params: {},
      });
      writes = writes.then(() => child.write(shutdown)).catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, options.shutdownGraceMs ?? 2000);
      });
      void Promise.race([exit, grace])
        .then(() => (exited ? undefined : child.kill()))
        .catch(() => {})
        .finally(() => clearTimeout(timer));
    },
  };
}

/**
 * The plugin types raw chunks as Uint8Array, but its Rust side sends them through a Tauri
 * Channel as serde JSON, so a webview gets a plain array of numbers (`Vec<u8>`).
 */
type RawChunk = string | Uint8Array | readonly number[];

function bytesOf(chunk: Uint8Array | readonly number[]): Uint8Array {
  return ArrayBuffer.isView(chunk) ? chunk : Uint8Array.from(chunk);
}
