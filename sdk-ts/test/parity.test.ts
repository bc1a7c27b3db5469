import { describe, expect, it } from "vitest";
import { ErrorCodes, RpcError, StoppedError } from "../src/errors.js";
import type { Snapshot } from "../src/protocol.js";
import { createRevisionSync, type RevisionSyncOptions, type SyncErrorContext } from "../src/revision-sync.js";
import { until, within } from "./helpers/async.js";
import { connectToFake } from "./helpers/fake-sidecar.js";

// Where apps ported from the seed's @statesync/core depend on its behaviour (issue 13):
// an idempotent start(), a quiet refresh() after stop(), the thrown value kept, failures
// logged with logger.error, and a clear error for what this SDK does not do.

class StoreRejected extends Error {
  override name = "StoreRejected";
  readonly field = "theme";
}

/** The real sidecar's error notification for a host error answer (rpc/server.go callHost). */
function hostErrorNotification(phase: "apply" | "getSnapshot", code: number, message: string) {
  return {
    phase,
    channel: "w1",
    topic: "app-config",
    error: { code, message: `the host answered ${phase} with error ${code}: ${message}` },
  };
}

describe("parity with @statesync/core", () => {
  it("start() twice returns the same promise and opens one channel (React StrictMode)", async () => {
    const { client, sidecar } = await connectToFake();
    const handle = createRevisionSync({
      topic: "app-config",
      channel: "w1",
      connection: client,
      applier: { apply() {} },
    });
    const first = handle.start();
    const second = handle.start();
    expect(second).toBe(first);
    const open = await sidecar.next("channel.open");
    sidecar.respond(open.id ?? null, { channel: "w1", topic: "app-config", localRevision: "0" });
    await within(first, "start");
    await within(handle.start(), "start once running"); // resolves, opens nothing more
    expect(sidecar.received.filter((m) => m.method === "channel.open")).toHaveLength(1);
    handle.stop();
    await expect(handle.start()).rejects.toBeInstanceOf(StoppedError);
  });

  it("start() after a failed start starts again", async () => {
    const { client, sidecar } = await connectToFake();
    const handle = createRevisionSync({
      topic: "app-config",
      channel: "w1",
      connection: client,
      applier: { apply() {} },
    });
    const failing = handle.start();
    sidecar.respondError((await sidecar.next("channel.open")).id ?? null, ErrorCodes.SyncFailed, "no snapshot");
    await expect(failing).rejects.toMatchObject({ code: ErrorCodes.SyncFailed });
    const again = handle.start();
    expect(again).not.toBe(failing);
    sidecar.respond((await sidecar.next("channel.open")).id ?? null, { channel: "w1", localRevision: "0" });
    await within(again, "the second start");
  });

  it("refresh() after stop() resolves and sends nothing; before start() it rejects saying to start first", async () => {
    const { client, sidecar } = await connectToFake();
    const handle = createRevisionSync({
      topic: "app-config",
      channel: "w1",
      connection: client,
      applier: { apply() {} },
    });
    await expect(handle.refresh()).rejects.toThrow(/call start\(\) first/);
    const started = handle.start();
    sidecar.respond((await sidecar.next("channel.open")).id ?? null, { channel: "w1", localRevision: "0" });
    await within(started, "start");
    const inFlight = handle.refresh();
    const request = await sidecar.next("channel.refresh");
    handle.stop();
    await expect(handle.refresh()).resolves.toBeUndefined();
    // The sidecar refuses the refresh of a channel closed meanwhile: still not an error.
    sidecar.respondError(request.id ?? null, ErrorCodes.UnknownChannel, 'channel "w1" is not open');
    await expect(inFlight).resolves.toBeUndefined();
    await sidecar.next("channel.close");
    expect(sidecar.received.filter((m) => m.method === "channel.refresh")).toHaveLength(1);
  });

  it("onError gets what the applier and the provider threw, instanceof and fields intact; logger.error hears it", async () => {
    const { client, sidecar } = await connectToFake();
    const errors: SyncErrorContext[] = [];
    const logged: unknown[][] = [];
    const rejected = new StoreRejected("the store rejected it");
    const unavailable = { reason: "offline", retryable: true }; // not even an Error
    let failApply = false;
    let failSnapshot = false;
    const handle = createRevisionSync({
      topic: "app-config",
      channel: "w1",
      connection: client,
      provider: {
        getSnapshot: async (): Promise<Snapshot<unknown>> => {
          if (failSnapshot) throw unavailable;
          return { revision: "1", data: {} };
        },
      },
      applier: {
        apply() {
          if (failApply) throw rejected;
        },
      },
      logger: { error: (...args: unknown[]) => void logged.push(args) },
      onError: (context) => errors.push(context),
    });
    const started = handle.start();
    sidecar.respond((await sidecar.next("channel.open")).id ?? null, { channel: "w1", localRevision: "0" });
    await within(started, "start");

    failApply = true;
    const apply = await sidecar.call("apply", { channel: "w1", topic: "app-config", revision: "2", data: {} });
    expect(apply.error).toEqual({ code: ErrorCodes.InternalError, message: "the store rejected it" });
    failSnapshot = true;
    const snapshot = await sidecar.call("getSnapshot", { topic: "app-config", channel: "w1" });
    expect(snapshot.error).toEqual({ code: ErrorCodes.InternalError, message: "[object Object]" });
    // A report that is not about a thrown value (a timeout) stays the sidecar's RpcError.
    sidecar.notify("error", {
      phase: "apply",
      channel: "w1",
      error: { code: ErrorCodes.SyncFailed, message: "the host did not answer apply within the call timeout (10s)" },
    });
    sidecar.notify("error", hostErrorNotification("apply", ErrorCodes.InternalError, "the store rejected it"));
    sidecar.notify("error", hostErrorNotification("getSnapshot", ErrorCodes.InternalError, "[object Object]"));
    await until(() => errors.length === 3, "three reports");

    expect(errors.map((e) => e.phase)).toEqual(["apply", "apply", "getSnapshot"]);
    expect(errors[0]?.error).toBeInstanceOf(RpcError);
    expect(errors[0]?.error).toMatchObject({ code: ErrorCodes.SyncFailed });
    expect(errors[1]?.error).toBe(rejected);
    expect(errors[1]?.error).toBeInstanceOf(StoreRejected);
    expect(errors[1]?.error).toMatchObject({ field: "theme" });
    expect(errors[2]?.error).toBe(unavailable);
    expect(logged.map(([message]) => message)).toEqual([
      "state-sync w1: apply failed",
      "state-sync w1: apply failed",
      "state-sync w1: getSnapshot failed",
    ]);
    expect(logged[1]?.[1]).toMatchObject({ phase: "apply", error: rejected });
  });

  it("a provider whose data JSON cannot encode is answered at once with an error naming what and where", async () => {
    const { client, sidecar } = await connectToFake();
    const cycle: Record<string, unknown> = { name: "root" };
    cycle.self = cycle;
    const answers: unknown[] = [
      { revision: "1", data: { count: 12n } },
      { revision: "1", data: { nested: [cycle] } },
    ];
    const handle = createRevisionSync({
      topic: "app-config",
      channel: "w1",
      connection: client,
      provider: { getSnapshot: async () => answers.shift() as Snapshot<unknown> },
      applier: { apply() {} },
    });
    void handle.start();
    await sidecar.next("channel.open");
    const bigint = await sidecar.call("getSnapshot", { topic: "app-config", channel: "w1" });
    expect(bigint.error?.code).toBe(ErrorCodes.InternalError);
    expect(bigint.error?.message).toBe(
      "getSnapshot: the answer cannot be encoded as JSON: result.data.count: the BigInt 12n cannot be encoded as JSON: send it as a string (String(value)) or a number",
    );
    const cyclic = await sidecar.call("getSnapshot", { topic: "app-config", channel: "w1" });
    expect(cyclic.error?.message).toMatch(
      /^getSnapshot: the answer cannot be encoded as JSON: result\.data\.nested\[0\]\.self: refers back .* \(a cycle\)/,
    );
    expect(client.state).toBe("open"); // not taken for a lost link
    handle.stop();
  });

  it("createRevisionSync without a connection, or with an option it does not know, is a TypeError that says why", async () => {
    const { client } = await connectToFake();
    const applier = { apply() {} };
    const call = (options: unknown) => () => createRevisionSync(options as RevisionSyncOptions<unknown>);
    expect(call({ topic: "t", applier })).toThrow(TypeError);
    expect(call({ topic: "t", applier })).toThrow(
      /options\.connection is missing: pass the client that connect\(link\) resolves with/,
    );
    expect(call({ topic: "t", applier, connection: {} })).toThrow(/not a StateSyncClient/);
    // @statesync/core's throttling is implemented (by the sidecar's engine), so it is known.
    expect(call({ topic: "t", applier, connection: client, throttling: { debounceMs: 50 } })).not.toThrow();
    expect(call({ topic: "t", applier, connection: client, throttle: { debounceMs: 50 } })).toThrow(
      /unknown option "throttle".*throttling/,
    );
    expect(call({ topic: "t", applier, connection: client, shouldRefrsh: () => true })).toThrow(
      /unknown option "shouldRefrsh".*known: topic, connection/,
    );
    expect(call({ topic: " ", applier, connection: client })).toThrow(/options\.topic must be a non-empty string/);
    expect(call({ topic: "t", connection: client })).toThrow(/options\.applier must be an object with apply/);
  });
});

describe("the client checks what it sends", () => {
  it("invalidate and invalidateAndCount throw the sidecar's -32602 before sending", async () => {
    const { client, sidecar } = await connectToFake();
    const cases: [unknown, string | undefined, string][] = [
      [
        { topic: "t", revision: "007" },
        "revision",
        'invalid params: revision: revision "007" is not canonical: leading zeros',
      ],
      [{ topic: "t", revision: 7 }, "revision", 'invalid params: revision: want a string, got a number "7"'],
      [{ topic: "t" }, "revision", "invalid params: revision: is missing"],
      [
        { topic: " ", revision: "1" },
        "topic",
        'invalid params: topic: is empty: want a stable name such as "app-config"',
      ],
      [
        { topic: "t", revision: "1", channel: "" },
        undefined,
        "invalid params: channel: is empty: leave it out to reach every channel of the topic, or name one channel",
      ],
    ];
    for (const [params, field, message] of cases) {
      const thrown = (() => {
        try {
          client.invalidate(params as never);
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      expect(thrown, JSON.stringify(params)).toBeInstanceOf(RpcError);
      expect(thrown).toMatchObject({ code: ErrorCodes.InvalidParams, message });
      expect((thrown as RpcError).data).toEqual(field === undefined ? undefined : { field });
      await expect(client.invalidateAndCount(params as never)).rejects.toMatchObject({ message });
    }
    client.invalidate({ topic: "t", revision: "8" });
    expect((await sidecar.next("invalidate")).params).toEqual({ topic: "t", revision: "8" });
    expect(sidecar.received.filter((m) => m.method === "invalidate")).toHaveLength(1);
  });

  it("set rejects what the sidecar would refuse and data JSON would not carry as written", async () => {
    const { client, sidecar } = await connectToFake();
    const rejects = async (promise: Promise<unknown>, message: string | RegExp) => {
      const error = await promise.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RpcError);
      expect(error).toMatchObject({ code: ErrorCodes.InvalidParams });
      if (typeof message === "string") expect((error as Error).message).toBe(message);
      else expect((error as Error).message).toMatch(message);
    };
    await rejects(
      client.set("t", 1, { expectedRevision: "01" }),
      'invalid params: expectedRevision: revision "01" is not canonical: leading zeros',
    );
    await rejects(client.set("", 1), "invalid params: topic: is missing");
    await rejects(
      client.set("t", undefined),
      "invalid params: data: is missing: send the topic's new state (any JSON value)",
    );
    await rejects(
      client.set("t", { tabs: new Map([["a", 1]]) }),
      "invalid params: data.tabs: a Map is not JSON (JSON.stringify would send {}): convert it, e.g. Object.fromEntries(map)",
    );
    await rejects(client.set("t", { ids: new Set([1]) }), /data\.ids: a Set is not JSON .* \[\.\.\.set\]/);
    await rejects(client.set("t", [1, Number.NaN]), /^invalid params: data\[1\]: NaN is not a JSON number/);
    await rejects(client.set("t", { n: 1n }), /^invalid params: data\.n: the BigInt 1n cannot be encoded/);
    expect(sidecar.received.filter((m) => m.method === "state.set")).toHaveLength(0);
    // JSON as JSON.stringify writes it is fine: a Date, undefined members, holes.
    const sent = client.set("t", { at: new Date(0), gone: undefined, list: [1, undefined] });
    const request = await sidecar.next("state.set");
    expect(request.params).toEqual({ topic: "t", data: { at: "1970-01-01T00:00:00.000Z", list: [1, null] } });
    sidecar.respond(request.id ?? null, { topic: "t", revision: "1" });
    await within(sent, "set");
  });
});
