// src/sidecar-link.ts: a Link to the sidecar that lib.rs spawned
import type { JsonRpcMessage, Link } from "@state-sync/sdk";
import { Channel, invoke } from "@tauri-apps/api/core";

/** What `sidecar_start` sends on its channel (`SidecarEvent` in lib.rs). */
type SidecarEvent = { kind: "line"; line: string } | { kind: "exit"; code: number | null };

export async function createRustSidecarLink(): Promise<Link> {
  const messageHandlers = new Set<(message: unknown) => void>();
  const closeHandlers = new Set<(error?: Error) => void>();
  let closed = false;
  const finish = (error?: Error) => {
    if (closed) return;
    closed = true;
    messageHandlers.clear();
    for (const handler of [...closeHandlers]) handler(error);
    closeHandlers.clear();
  };

  const events = new Channel<SidecarEvent>();
  events.onmessage = (event) => {
    if (event.kind === "exit") {
      finish(event.code === 0 ? undefined : new Error(`statesync-sidecar exited (code ${event.code})`));
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(event.line);
    } catch {
      return; // stdout carries JSON-RPC only; skip anything else
    }
    for (const handler of [...messageHandlers]) handler(message);
  };
  await invoke("sidecar_start", { events });

  // One write at a time: two invokes in flight may reach Rust in either order.
  let writes = Promise.resolve();
  const write = (message: JsonRpcMessage) => {
    const line = `${JSON.stringify(message)}\n`;
    writes = writes
      .then(() => invoke<void>("sidecar_write", { line }))
      .catch((error: unknown) => finish(new Error(`writing to statesync-sidecar failed: ${String(error)}`)));
  };

  return {
    send(message) {
      if (closed) throw new Error("the sidecar link is closed");
      write(message);
    },
    onMessage(handler) {
      messageHandlers.add(handler);
      return () => messageHandlers.delete(handler);
    },
    onClose(handler) {
      closeHandlers.add(handler);
      return () => closeHandlers.delete(handler);
    },
    close() {
      if (closed) return;
      write({ jsonrpc: "2.0", id: "sidecar-link/shutdown", method: "shutdown", params: {} }); // it exits 0
      finish();
    },
  };
}
