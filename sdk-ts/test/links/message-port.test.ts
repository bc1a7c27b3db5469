import { MessageChannel } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import type { JsonRpcMessage, Link } from "../../src/link.js";
import { createMessagePortLink, type MessagePortLike } from "../../src/links/message-port.js";
import { gate, within } from "../helpers/async.js";
import { bigApply, burst, MIB } from "../helpers/streams.js";

function pair(): [Link, Link] {
  const { port1, port2 } = new MessageChannel();
  return [createMessagePortLink(port1), createMessagePortLink(port2)];
}

function receive(link: Link, count: number): Promise<unknown[]> {
  const received: unknown[] = [];
  const done = gate<unknown[]>();
  link.onMessage((message) => {
    received.push(message);
    if (received.length === count) done.open(received);
  });
  return within(done.promise, `${count} messages`, 15_000);
}

describe("MessagePort link (worker_threads MessageChannel)", () => {
  it("carries 1 MiB messages", async () => {
    const [a, b] = pair();
    const messages = [bigApply(1, MIB), bigApply(2, MIB)];
    const received = receive(b, 2);
    for (const message of messages) a.send(message);
    expect(await received).toEqual(messages);
    a.close();
  });

  it("carries a burst of 10,000 messages in order", async () => {
    const [a, b] = pair();
    const messages = burst(10_000);
    const received = receive(b, 10_000);
    for (const message of messages) a.send(message);
    expect(await received).toEqual(messages);
    a.close();
  });

  it("closes both ends when one is closed", async () => {
    const [a, b] = pair();
    const closed = gate<Error | undefined>();
    b.onClose((error) => closed.open(error));
    a.close();
    expect(await within(closed.promise, "the other end to close")).toBeUndefined();
    expect(() => a.send({ jsonrpc: "2.0", method: "x" })).toThrow(/closed/);
  });
});

describe("MessagePort link with other port shapes", () => {
  it("uses on()/off() and start() on an Electron MessagePortMain-like port", async () => {
    const listeners = new Map<string, (event: unknown) => void>();
    const posted: unknown[] = [];
    let started = false;
    const port: MessagePortLike = {
      postMessage: (message) => posted.push(message),
      on: (type, listener) => listeners.set(type, listener),
      off: (type) => listeners.delete(type),
      start: () => {
        started = true;
      },
      close: () => {},
    };
    const link = createMessagePortLink(port);
    expect(started).toBe(true);
    const got = receive(link, 1);
    listeners.get("message")?.({ data: { jsonrpc: "2.0", method: "hello" } });
    expect(await got).toEqual([{ jsonrpc: "2.0", method: "hello" }]);
    const message: JsonRpcMessage = { jsonrpc: "2.0", id: 1, result: null };
    link.send(message);
    expect(posted).toEqual([message]);
    const closed = gate();
    link.onClose(() => closed.open());
    listeners.get("close")?.({});
    await within(closed.promise, "close");
    expect(listeners.size).toBe(0);
  });

  it("falls back to onmessage", async () => {
    const port: MessagePortLike = { postMessage: () => {}, onmessage: null };
    const link = createMessagePortLink(port);
    const got = receive(link, 1);
    port.onmessage?.({ data: { jsonrpc: "2.0", method: "hi" } });
    expect(await got).toEqual([{ jsonrpc: "2.0", method: "hi" }]);
    link.close();
    expect(port.onmessage).toBeNull();
  });
});
