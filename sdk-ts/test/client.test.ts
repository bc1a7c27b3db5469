import { describe, expect, it } from "vitest";
import { connect } from "../src/client.js";
import { ErrorCodes, RpcError } from "../src/errors.js";
import { createMemoryLinkPair } from "../src/links/memory.js";
import type { ErrorNotification } from "../src/protocol.js";
import { gate, within } from "./helpers/async.js";
import { connectToFake } from "./helpers/fake-sidecar.js";

describe("connect", () => {
  it("sends initialize with protocol version 1 and the client's name, then is open", async () => {
    const [clientEnd, sidecarEnd] = createMemoryLinkPair();
    const seen = gate<unknown>();
    sidecarEnd.onMessage((message) => {
      seen.open(message);
      sidecarEnd.send({
        jsonrpc: "2.0",
        id: 1,
        result: { protocolVersion: "1", server: { name: "s", version: "9" }, capabilities: {} },
      });
    });
    const client = await within(connect(clientEnd, { client: { name: "app", version: "1.0" } }), "connect");
    expect(await seen.promise).toEqual({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "1", client: { name: "app", version: "1.0" } },
    });
    expect(client.state).toBe("open");
    expect(client.server.server).toEqual({ name: "s", version: "9" });
  });

  it("refuses a sidecar that speaks another protocol version, naming the fix, and closes the link", async () => {
    const [clientEnd, sidecarEnd] = createMemoryLinkPair();
    sidecarEnd.onMessage(() =>
      sidecarEnd.send({ jsonrpc: "2.0", id: 1, result: { protocolVersion: "2", server: {}, capabilities: {} } }),
    );
    const closed = gate();
    sidecarEnd.onClose(() => closed.open());
    const error = await connect(clientEnd).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcError);
    expect(error).toMatchObject({ code: ErrorCodes.UnsupportedProtocolVersion });
    expect((error as Error).message).toMatch(/speaks protocol 2.*install matching versions/);
    await within(closed.promise, "the link to close");
  });
});

describe("StateSyncClient", () => {
  it("set sends expectedRevision only when given; a conflict is RpcError -32005 with currentRevision", async () => {
    const { client, sidecar } = await connectToFake();
    const blind = client.set("app-config", { theme: "dark" });
    const first = await sidecar.next("state.set");
    expect(first.params).toEqual({ topic: "app-config", data: { theme: "dark" } });
    sidecar.respond(first.id ?? null, { topic: "app-config", revision: "1" });
    expect(await blind).toEqual({ topic: "app-config", revision: "1" });

    const cas = client.set("app-config", { theme: "light" }, { expectedRevision: "0" });
    const second = await sidecar.next("state.set");
    expect(second.params).toEqual({ topic: "app-config", data: { theme: "light" }, expectedRevision: "0" });
    sidecar.respondError(second.id ?? null, -32005, "stale", { currentRevision: "1" });
    await expect(cas).rejects.toMatchObject({ code: -32005, data: { currentRevision: "1" } });

    const read = client.get("app-config");
    const get = await sidecar.next("state.get");
    expect(get.params).toEqual({ topic: "app-config" });
    sidecar.respond(get.id ?? null, { topic: "app-config", revision: "1", data: { theme: "dark" } });
    expect(await read).toEqual({ topic: "app-config", revision: "1", data: { theme: "dark" } });
  });

  it("routes the sidecar's calls per channel; unserved channels are answered -32001", async () => {
    const { client, sidecar } = await connectToFake();
    const applied: unknown[] = [];
    const dispose = client.serveChannel("w1", {
      apply: (params) => {
        applied.push(params);
      },
      getSnapshot: async () => ({ revision: "3", data: "mine" }),
    });
    expect(() => client.serveChannel("w1", { apply: () => {} })).toThrow(/already served/);

    const snapshot = await sidecar.call("getSnapshot", { topic: "t", channel: "w1" });
    expect(snapshot.result).toEqual({ revision: "3", data: "mine" });
    const apply = await sidecar.call("apply", { channel: "w1", topic: "t", revision: "3", data: "mine" });
    expect(apply.result).toEqual({});
    expect(applied).toEqual([{ channel: "w1", topic: "t", revision: "3", data: "mine" }]);

    dispose();
    const late = await sidecar.call("apply", { channel: "w1", topic: "t", revision: "4", data: "x" });
    expect(late.error?.code).toBe(ErrorCodes.UnknownChannel);
    expect(applied).toHaveLength(1);
    const other = await sidecar.call("getSnapshot", { topic: "t", channel: "nobody" });
    expect(other.error?.code).toBe(ErrorCodes.UnknownChannel);
  });

  it("answers getSnapshot {topic} with the host provider, or -32601 without one", async () => {
    const { client, sidecar } = await connectToFake();
    const none = await sidecar.call("getSnapshot", { topic: "host-topic" });
    expect(none.error?.code).toBe(ErrorCodes.MethodNotFound);
    client.serveHostSnapshots(async (topic) => ({ revision: "8", data: { topic } }));
    const answer = await sidecar.call("getSnapshot", { topic: "host-topic" });
    expect(answer.result).toEqual({ revision: "8", data: { topic: "host-topic" } });
  });

  it("hands every error notification to onError, the channel's own to its handler too", async () => {
    const { client, sidecar } = await connectToFake();
    const all: ErrorNotification[] = [];
    const mine = gate<ErrorNotification>();
    client.onError((params) => all.push(params));
    client.onError(() => {
      throw new Error("hook bug");
    });
    client.serveChannel("w1", { apply: () => {}, onError: (params) => mine.open(params) });
    const report = { phase: "apply", channel: "w1", topic: "t", error: { code: -32603, message: "x" } };
    sidecar.notify("error", { phase: "protocol", error: { message: "no channel" } });
    sidecar.notify("error", "garbage");
    sidecar.notify("error", report);
    expect(await within(mine.promise, "the channel's error")).toEqual(report);
    expect(all).toEqual([{ phase: "protocol", error: { message: "no channel" } }, report]);
  });
});
