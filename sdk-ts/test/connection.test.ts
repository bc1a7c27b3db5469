import { describe, expect, it } from "vitest";
import { Connection } from "../src/connection.js";
import { ConnectionClosedError, ErrorCodes, RequestTimeoutError, RpcError } from "../src/errors.js";
import { createMemoryLinkPair } from "../src/links/memory.js";
import { gate, within } from "./helpers/async.js";

/** Two open connections talking to each other. */
function pair() {
  const [a, b] = createMemoryLinkPair();
  const left = new Connection(a);
  const right = new Connection(b);
  left.open();
  right.open();
  return { left, right };
}

describe("Connection", () => {
  it("matches responses to requests by id, whatever the order of the answers", async () => {
    const { left, right } = pair();
    const slow = gate<string>();
    right.onRequest("slow", () => slow.promise);
    right.onRequest("fast", (params) => ({ echo: params }));
    const first = left.request("slow");
    const second = left.request("fast", { n: 2 });
    expect(await within(second, "fast")).toEqual({ echo: { n: 2 } });
    slow.open("done");
    expect(await within(first, "slow")).toBe("done");
  });

  it("turns error answers into RpcError with code and data, and unknown methods into -32601", async () => {
    const { left, right } = pair();
    right.onRequest("conflict", () => {
      throw new RpcError(ErrorCodes.RevisionConflict, "stale", { currentRevision: "7" });
    });
    right.onRequest("bug", () => {
      throw new Error("boom");
    });
    const conflict = await left.request("conflict").catch((error: unknown) => error);
    expect(conflict).toBeInstanceOf(RpcError);
    expect(conflict).toMatchObject({ code: -32005, message: "stale", data: { currentRevision: "7" } });
    await expect(left.request("bug")).rejects.toMatchObject({ code: ErrorCodes.InternalError, message: "boom" });
    await expect(left.request("nope")).rejects.toMatchObject({ code: ErrorCodes.MethodNotFound });
  });

  it("answers a handler's undefined as null (a response needs a result)", async () => {
    const { left, right } = pair();
    right.onRequest("void", () => undefined);
    expect(await left.request("void")).toBeNull();
  });

  it("delivers notifications to every listener, and a throwing listener harms no one", async () => {
    const { left, right } = pair();
    const heard: unknown[] = [];
    right.onNotification("ping", () => {
      throw new Error("listener bug");
    });
    const got = gate<unknown>();
    right.onNotification("ping", (params) => {
      heard.push(params);
      got.open(params);
    });
    left.notify("ping", { n: 1 });
    expect(await within(got.promise, "ping")).toEqual({ n: 1 });
    expect(heard).toEqual([{ n: 1 }]);
  });

  it("registration returns a disposer; a second handler for one method is refused", async () => {
    const { left, right } = pair();
    const dispose = right.onRequest("m", () => 1);
    expect(() => right.onRequest("m", () => 2)).toThrow(/already registered/);
    expect(await left.request("m")).toBe(1);
    dispose();
    await expect(left.request("m")).rejects.toMatchObject({ code: ErrorCodes.MethodNotFound });
    right.onRequest("m", () => 2);
    expect(await left.request("m")).toBe(2);
  });

  it("checks its state: nothing is sent while connecting except the handshake, nothing after close", async () => {
    const [a, b] = createMemoryLinkPair();
    const connection = new Connection(a);
    const peer = new Connection(b);
    peer.open();
    peer.onRequest("initialize", () => "hello");
    expect(connection.state).toBe("connecting");
    await expect(connection.request("x")).rejects.toThrow(/still connecting/);
    expect(() => connection.notify("x")).toThrow(/still connecting/);
    expect(await connection.request("initialize", {}, { handshake: true })).toBe("hello");
    connection.open();
    expect(connection.state).toBe("open");
    connection.close();
    expect(connection.state).toBe("closed");
    await expect(connection.request("x")).rejects.toBeInstanceOf(ConnectionClosedError);
    expect(() => connection.notify("x")).toThrow(ConnectionClosedError);
    expect(() => connection.onRequest("x", () => 1)).toThrow(ConnectionClosedError);
    connection.close(); // twice is fine
  });

  it("rejects pending requests when it closes, and when the other side closes", async () => {
    const { left, right } = pair();
    right.onRequest("never", () => new Promise(() => {}));
    const mine = left.request("never");
    left.close();
    await expect(mine).rejects.toBeInstanceOf(ConnectionClosedError);

    const other = pair();
    other.right.onRequest("never", () => new Promise(() => {}));
    const closed = gate<Error | undefined>();
    other.left.onClose((error) => closed.open(error));
    const theirs = other.left.request("never");
    other.right.close();
    await expect(within(theirs, "rejection")).rejects.toBeInstanceOf(ConnectionClosedError);
    await within(closed.promise, "onClose");
    expect(other.left.state).toBe("closed");
  });

  it("times a request out per call or by default, and ignores the late answer", async () => {
    const [a, b] = createMemoryLinkPair();
    const left = new Connection(a, { requestTimeoutMs: 20 });
    const right = new Connection(b);
    left.open();
    right.open();
    const late = gate<string>();
    right.onRequest("slow", () => late.promise);
    const error = await left.request("slow").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestTimeoutError);
    expect(error).toMatchObject({ method: "slow", timeoutMs: 20 });
    await expect(left.request("slow", undefined, { timeoutMs: 5 })).rejects.toMatchObject({ timeoutMs: 5 });
    late.open("too late");
    right.onRequest("fast", () => "ok");
    expect(await left.request("fast")).toBe("ok"); // still healthy after late answers
  });

  it("answers a malformed request with -32600 and ignores other garbage", async () => {
    const [a, b] = createMemoryLinkPair();
    const connection = new Connection(a);
    connection.open();
    const answers: unknown[] = [];
    const answered = gate();
    b.onMessage((message) => {
      answers.push(message);
      answered.open();
    });
    b.send({ jsonrpc: "1.0", id: 9, method: "x" } as never);
    b.send("garbage" as never);
    b.send({ jsonrpc: "2.0", id: 12345, result: "answer to nothing" });
    await within(answered.promise, "the -32600 answer");
    expect(answers).toEqual([
      { jsonrpc: "2.0", id: 9, error: { code: -32600, message: "not a JSON-RPC 2.0 message" } },
    ]);
  });
});
