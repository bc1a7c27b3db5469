import { describe, expect, it } from "vitest";
import { createRevisionSync } from "../src/revision-sync.js";
import { readWindowMessage } from "../src/window-message.js";
import { connectToFake } from "./helpers/fake-sidecar.js";

const applier = { apply() {} };

describe("throttling, @statesync/core's option", () => {
  it("goes on the wire as channel.open options.throttling, next to channelOptions", async () => {
    const { client, sidecar } = await connectToFake();
    const throttling = { debounceMs: 100, throttleMs: 1000, leading: false, trailing: true, maxWaitMs: 500 };
    void createRevisionSync({
      topic: "t",
      channel: "a",
      connection: client,
      applier,
      throttling,
      channelOptions: { callTimeoutMs: 500 },
    }).start();
    expect((await sidecar.next("channel.open")).params).toEqual({
      channel: "a",
      topic: "t",
      options: { callTimeoutMs: 500, throttling },
    });
    void createRevisionSync({
      topic: "t",
      channel: "b",
      connection: client,
      applier,
      throttling: { debounceMs: 5 },
    }).start();
    expect((await sidecar.next("channel.open")).params).toEqual({
      channel: "b",
      topic: "t",
      options: { throttling: { debounceMs: 5 } },
    });
  });

  it("is refused when given twice", async () => {
    const { client } = await connectToFake();
    expect(() =>
      createRevisionSync({
        topic: "t",
        connection: client,
        applier,
        throttling: { debounceMs: 5 },
        channelOptions: { throttling: { throttleMs: 5 } },
      }),
    ).toThrow(/throttling is given twice/);
  });

  it("passes the relay's one reading, booleans checked, unknown members refused", () => {
    const open = (throttling: unknown) =>
      readWindowMessage({
        jsonrpc: "2.0",
        id: 1,
        method: "channel.open",
        params: { channel: "w", topic: "t", options: { throttling } },
      });
    expect(open({ throttleMs: 10, leading: false, trailing: true })).toMatchObject({
      kind: "request",
      params: { options: { throttling: { throttleMs: 10, leading: false, trailing: true } } },
    });
    expect(open({ leading: "no" })).toMatchObject({
      kind: "refused",
      code: -32602,
      message: expect.stringContaining("params.options.throttling.leading"),
    });
    expect(open({ throttle: 10 })).toMatchObject({ kind: "refused", message: expect.stringContaining("throttle") });
  });
});

describe("client.delete", () => {
  it("sends state.delete with only the members given", async () => {
    const { client, sidecar } = await connectToFake();
    void client.delete("doc");
    expect((await sidecar.next("state.delete")).params).toEqual({ topic: "doc" });
    void client.delete("doc", { expectedRevision: "4", sourceId: "w1" });
    expect((await sidecar.next("state.delete")).params).toEqual({
      topic: "doc",
      expectedRevision: "4",
      sourceId: "w1",
    });
  });

  it("passes the relay's one reading; an unknown member is refused", () => {
    const del = (params: unknown) => readWindowMessage({ jsonrpc: "2.0", id: 1, method: "state.delete", params });
    expect(del({ topic: "doc", expectedRevision: "2" })).toMatchObject({
      kind: "request",
      params: { topic: "doc", expectedRevision: "2" },
    });
    expect(del({ topic: "doc", expectedRevison: "2" })).toMatchObject({ kind: "refused", code: -32602 });
  });
});
