import { type ChildProcess, spawn } from "node:child_process";
import { createLineDecoder, encodeLine } from "../framing.js";
import type { JsonRpcMessage, Link } from "../link.js";
import { LinkListeners } from "../link-listeners.js";

export interface NodeLinkOptions {
  args?: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Gets the sidecar's stderr (its logs) line by line; inherited by default. */
  onStderr?: (line: string) => void;
  /** Gets a stdout line that is not JSON (it is skipped). */
  onInvalidLine?: (line: string, error: unknown) => void;
  /** How long dispose() waits for the sidecar to exit before killing it; 2000 ms. */
  shutdownGraceMs?: number;
}

export interface NodeLink extends Link {
  readonly process: ChildProcess;
  /**
   * Sends `shutdown`, ends stdin, and kills the sidecar if it has not exited after the
   * grace period. Resolves once it has exited. Safe to call twice.
   */
  dispose(): Promise<void>;
}

/** The id of the link's own `shutdown`; its answer is not passed on. */
const SHUTDOWN_ID = "state-sync/node-link/shutdown";

/**
 * Spawns the sidecar binary and speaks NDJSON over its stdio. For Node hosts, Electron's
 * main process, tests.
 */
export function createNodeLink(binaryPath: string, options: NodeLinkOptions = {}): NodeLink {
  const child = spawn(binaryPath, [...(options.args ?? [])], {
    stdio: ["pipe", "pipe", options.onStderr === undefined ? "inherit" : "pipe"],
    windowsHide: true,
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  const listeners = new LinkListeners();
  let closing = false;
  let exited = false;
  let disposal: Promise<void> | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once("close", () => resolve());
    child.once("error", () => resolve());
  });

  const decoder = createLineDecoder({
    onMessage(message) {
      if (closing || isShutdownAnswer(message)) {
        return;
      }
      listeners.deliver(message);
    },
    ...(options.onInvalidLine === undefined ? {} : { onInvalidLine: options.onInvalidLine }),
  });
  child.stdout?.setEncoding("utf8"); // decodes UTF-8 split across chunks correctly
  child.stdout?.on("data", (chunk: string) => decoder.push(chunk));
  if (options.onStderr !== undefined) {
    forwardLines(child, options.onStderr);
  }
  // A write to a sidecar that just died fails with EPIPE; its exit reports it.
  child.stdin?.on("error", () => {});

  const finish = (error?: Error): void => {
    if (exited) {
      return;
    }
    exited = true;
    listeners.closed(closing ? undefined : error);
  };
  child.once("error", (error) => finish(new Error(`statesync-sidecar at ${binaryPath}: ${error.message}`)));
  child.once("close", (code, signal) =>
    finish(new Error(`statesync-sidecar exited (code ${code}, signal ${signal ?? "none"})`)),
  );

  const write = (message: JsonRpcMessage): boolean => {
    const stdin = child.stdin;
    if (exited || stdin === null || !stdin.writable) {
      return false;
    }
    stdin.write(encodeLine(message));
    return true;
  };

  const dispose = (): Promise<void> => {
    disposal ??= (async () => {
      closing = true;
      if (exited) {
        return;
      }
      write({ jsonrpc: "2.0", id: SHUTDOWN_ID, method: "shutdown", params: {} });
      child.stdin?.end();
      let cancelKill: (() => void) | undefined;
      const killed = new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          child.kill("SIGKILL");
          resolve();
        }, options.shutdownGraceMs ?? 2000);
        cancelKill = () => clearTimeout(timer);
      });
      await Promise.race([exit, killed]);
      cancelKill?.();
      await exit;
    })();
    return disposal;
  };

  return {
    process: child,
    send(message) {
      if (closing || !write(message)) {
        throw new Error("the sidecar link is closed");
      }
    },
    onMessage: listeners.onMessage,
    onClose: listeners.onClose,
    close() {
      void dispose();
    },
    dispose,
  };
}

function isShutdownAnswer(message: unknown): boolean {
  return typeof message === "object" && message !== null && (message as { id?: unknown }).id === SHUTDOWN_ID;
}

function forwardLines(child: ChildProcess, onLine: (line: string) => void): void {
  let partial = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
    }
  });
  child.stderr?.on("end", () => {
    if (partial !== "") {
      onLine(partial);
    }
  });
}
