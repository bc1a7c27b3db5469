import { describe, expect, it } from "vitest";
import { createMemoryLinkPair } from "../../src/links/memory.js";
import { gate, within } from "../helpers/async.js";
import { burst } from "../helpers/streams.js";

describe("in-memory link pair", () => {
  it("delivers asynchronously, in order, as copies", async () => {
    const [a, b] = createMemoryLinkPair();
    const received: unknown[] = [];
    const done = gate();
    b.onMessage((message) => {
      received.push(message);
      if (received.length === 10_000) done.open();
    });
    const messages = burst(10_000);
    for (const message of messages) a.send(message);
    expect(received).toHaveLength(0); // nothing synchronously: like a real transport
    await within(done.promise, "10,000 messages");
    expect(received).toEqual(messages);
    expect(received[0]).not.toBe(messages[0]);
  });

  it("closes the other end after the messages already sent to it", async () => {
    const [a, b] = createMemoryLinkPair();
    const events: string[] = [];
    const closed = gate();
    b.onMessage(() => events.push("message"));
    b.onClose(() => {
      events.push("close");
      closed.open();
    });
    a.send({ jsonrpc: "2.0", method: "last" });
    a.close();
    await within(closed.promise, "close");
    expect(events).toEqual(["message", "close"]);
    expect(() => a.send({ jsonrpc: "2.0", method: "x" })).toThrow(/closed/);
    expect(() => b.send({ jsonrpc: "2.0", method: "x" })).toThrow(/closed/);
  });

  it("fails at send on what JSON cannot carry, as a wire would", () => {
    const [a] = createMemoryLinkPair();
    expect(() => a.send({ jsonrpc: "2.0", method: "x", params: { n: 1n } })).toThrow();
  });
});
