import { connect, type StateSyncClient } from "../../src/client.js";
import type { Link } from "../../src/link.js";
import { createMemoryLinkPair } from "../../src/links/memory.js";
import { within } from "./async.js";

export interface Received {
  jsonrpc: "2.0";
  id?: number | string | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

/**
 * The sidecar's side of a link, scripted by the test: it records what it receives and
 * lets the test answer, call and notify. It answers `initialize` by itself.
 */
export class FakeSidecar {
  readonly link: Link;
  readonly received: Received[] = [];
  initializeCount = 0;
  #cursor = 0;
  #waiters: (() => void)[] = [];
  #nextId = 1;
  #answers = new Map<number | string, (message: Received) => void>();

  constructor(
    link: Link,
    readonly initializeResult: unknown = INITIALIZE_RESULT,
  ) {
    this.link = link;
    link.onMessage((value) => {
      const message = value as Received;
      if (message.method === "initialize" && message.id !== undefined) {
        this.initializeCount++;
        this.respond(message.id ?? null, this.initializeResult);
        return;
      }
      if (message.method === undefined && message.id !== undefined && message.id !== null) {
        const answer = this.#answers.get(message.id);
        if (answer !== undefined) {
          this.#answers.delete(message.id);
          answer(message);
          return;
        }
      }
      this.received.push(message);
      for (const wake of this.#waiters.splice(0)) {
        wake();
      }
    });
  }

  /** The next message received that matches, in order; earlier ones are skipped. */
  async next(method: string, what = method): Promise<Received> {
    return within(
      (async () => {
        for (;;) {
          while (this.#cursor < this.received.length) {
            const message = this.received[this.#cursor++];
            if (message !== undefined && message.method === method) {
              return message;
            }
          }
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      })(),
      `the fake sidecar to receive ${what}`,
    );
  }

  respond(id: number | string | null, result: unknown): void {
    this.link.send({ jsonrpc: "2.0", id, result });
  }

  respondError(id: number | string | null, code: number, message: string, data?: unknown): void {
    this.link.send({ jsonrpc: "2.0", id, error: data === undefined ? { code, message } : { code, message, data } });
  }

  notify(method: string, params: unknown): void {
    this.link.send({ jsonrpc: "2.0", method, params });
  }

  /** Calls the client as the sidecar does (getSnapshot, apply); resolves with the response. */
  call(method: string, params: unknown): Promise<Received> {
    const id = `fake-${this.#nextId++}`;
    const answered = new Promise<Received>((resolve) => this.#answers.set(id, resolve));
    this.link.send({ jsonrpc: "2.0", id, method, params });
    return within(answered, `the answer to ${method}`);
  }
}

export const INITIALIZE_RESULT = {
  protocolVersion: "1",
  server: { name: "fake-sidecar", version: "0.0.0" },
  capabilities: { sources: ["store", "host", "channel"], framing: "ndjson" },
};

/** The answer of a sidecar that can send deltas (issue 15). */
export const INITIALIZE_WITH_DELTAS = {
  ...INITIALIZE_RESULT,
  capabilities: {
    ...INITIALIZE_RESULT.capabilities,
    deltas: { version: 1, historyBytes: 4 << 20, minSavingsRatio: 0.5 },
  },
};

/** A connected client and the fake sidecar at the other end of an in-memory link. */
export async function connectToFake(
  initializeResult: unknown = INITIALIZE_RESULT,
): Promise<{ client: StateSyncClient; sidecar: FakeSidecar }> {
  const [clientEnd, sidecarEnd] = createMemoryLinkPair();
  const sidecar = new FakeSidecar(sidecarEnd, initializeResult);
  const client = await within(connect(clientEnd), "connect");
  return { client, sidecar };
}
