import type { JsonRpcMessage, Link } from "../link.js";

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
  readonly #messageHandlers = new Set<(message: unknown) => void>();
  readonly #closeHandlers = new Set<(error?: Error) => void>();

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

  onMessage(handler: (message: unknown) => void): () => void {
    const entry = (message: unknown) => handler(message);
    this.#messageHandlers.add(entry);
    return () => {
      this.#messageHandlers.delete(entry);
    };
  }

  onClose(handler: (error?: Error) => void): () => void {
    const entry = (error?: Error) => handler(error);
    this.#closeHandlers.add(entry);
    return () => {
      this.#closeHandlers.delete(entry);
    };
  }

  close(): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    this.#messageHandlers.clear();
    const handlers = [...this.#closeHandlers];
    this.#closeHandlers.clear();
    for (const handler of handlers) {
      handler();
    }
    // Behind the messages already sent, as a pipe delivers its data before its end.
    const peer = this.peer;
    void Promise.resolve().then(() => peer?.close());
  }

  #deliver(message: unknown): void {
    for (const handler of [...this.#messageHandlers]) {
      handler(message);
    }
  }
}
