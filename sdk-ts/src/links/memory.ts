import type { JsonRpcMessage, Link } from "../link.js";
import { LinkListeners } from "../link-listeners.js";

/**
 * Two links connected to each other, for tests and for a host that talks to its own
 * relay. Messages go through JSON (as on a real wire: what cannot be serialised fails at
 * send) and arrive asynchronously, in order. close() on either side closes both, the other one
 * after the messages already sent to it.
 */
export function createMemoryLinkPair(): [Link, Link] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

class MemoryEnd implements Link {
  peer: MemoryEnd | undefined;
  #closed = false;
  readonly #listeners = new LinkListeners();
  readonly onMessage = this.#listeners.onMessage;
  readonly onClose = this.#listeners.onClose;

  send(message: JsonRpcMessage): void {
    if (this.#closed) {
      throw new Error("memory link is closed");
    }
    const text = JSON.stringify(message);
    const peer = this.peer;
    if (peer !== undefined) {
      void Promise.resolve().then(() => peer.#deliver(JSON.parse(text)));
    }
  }

  close(): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    this.#listeners.closed();
    // Behind the messages already sent, as a pipe delivers its data before its end.
    const peer = this.peer;
    void Promise.resolve().then(() => peer?.close());
  }

  #deliver(message: unknown): void {
    this.#listeners.deliver(message);
  }
}
