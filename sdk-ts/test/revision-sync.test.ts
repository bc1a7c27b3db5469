import { describe, expect, it } from "vitest";
import { ErrorCodes, RpcError, StoppedError } from "../src/errors.js";
import { MAX_NAME_BYTES } from "../src/names.js";
import type { Snapshot } from "../src/protocol.js";
import { createRevisionSync, type SyncErrorContext } from "../src/revision-sync.js";
import { type Gate, gate, within } from "./helpers/async.js";
import { connectToFake, type FakeSidecar, type Received } from "./helpers/fake-sidecar.js";

/** A subscriber the test drives: emit() delivers an event; subscribe() may be held by a gate. */
function scriptedSubscriber(hold?: Gate) {
  let handler: ((event: unknown) => void) | undefined;
  let active = false;
  const state = {
    subscribed: 0,
    unsubscribed: 0,
    emit(event: unknown) {
      if (active) handler?.(event);
    },
    /** A misbehaving subscriber that still delivers after its unsubscribe ran. */
    emitAnyway(event: unknown) {
      handler?.(event);
    },
    async subscribe(h: (event: unknown) => void) {
      state.subscribed++;
      handler = h;
      active = true;
      await hold?.promise;
      return () => {
        state.unsubscribed++;
        active = false;
      };
    },
  };
  return state;
}

function recordingApplier<T>() {
  const applied: { revision: string; data: T }[] = [];
  return {
    applied,
    failNext: undefined as Error | undefined,
    apply(envelope: { revision: string; data: T }) {
      if (this.failNext !== undefined) {
        const error = this.failNext;
        this.failNext = undefined;
        throw error;
      }
      applied.push({ revision: envelope.revision, data: envelope.data });
    },
  };
}

function provider<T>(snapshot: Snapshot<T>) {
  return { getSnapshot: async () => snapshot };
}

/** Plays the sidecar's side of channel.open for a channel-sourced topic: fetch, apply, answer. */
async function serveOpen(sidecar: FakeSidecar, open: Received, localRevision?: string): Promise<void> {
  const { channel, topic } = open.params as { channel: string; topic: string };
  const snapshot = await sidecar.call("getSnapshot", { topic, channel });
  const { revision, data } = snapshot.result as Snapshot;
  const apply = await sidecar.call("apply", { channel, topic, revision, data });
  expect(apply.error).toBeUndefined();
  sidecar.respond(open.id ?? null, { channel, topic, source: "channel", localRevision: localRevision ?? revision });
}

async function startedHandle(
  extra: { onError?: (context: SyncErrorContext) => void; shouldRefresh?: (event: unknown) => boolean } = {},
) {
  const { client, sidecar } = await connectToFake();
  const subscriber = scriptedSubscriber();
  const applier = recordingApplier<{ theme: string }>();
  const handle = createRevisionSync({
    topic: "app-config",
    channel: "w1/app-config",
    connection: client,
    subscriber,
    provider: provider({ revision: "5", data: { theme: "dark" } }),
    applier,
    ...extra,
  });
  const started = handle.start();
  await serveOpen(sidecar, await sidecar.next("channel.open"));
  await within(started, "start");
  return { client, sidecar, subscriber, applier, handle };
}

describe("createRevisionSync over the sidecar", () => {
  it("start subscribes first, then opens a channel-sourced channel, and resolves once the sidecar answered", async () => {
    const { client, sidecar } = await connectToFake();
    const subscriber = scriptedSubscriber();
    const applier = recordingApplier<string>();
    const handle = createRevisionSync({
      topic: "app-config",
      channel: "w1/app-config",
      connection: client,
      subscriber,
      provider: provider({ revision: "5", data: "dark" }),
      applier,
    });
    let resolved = false;
    const started = handle.start().then(() => {
      resolved = true;
    });
    const open = await sidecar.next("channel.open");
    expect(subscriber.subscribed).toBe(1); // subscribe → open: no event can be missed in between
    expect(open.params).toEqual({ channel: "w1/app-config", topic: "app-config", source: "channel" });
    // Late join: the sidecar fetches and applies the first snapshot before answering.
    const snapshot = await sidecar.call("getSnapshot", { topic: "app-config", channel: "w1/app-config" });
    expect(snapshot.result).toEqual({ revision: "5", data: "dark" });
    await sidecar.call("apply", { channel: "w1/app-config", topic: "app-config", revision: "5", data: "dark" });
    expect(resolved).toBe(false);
    sidecar.respond(open.id ?? null, {
      channel: "w1/app-config",
      topic: "app-config",
      source: "channel",
      localRevision: "5",
    });
    await within(started, "start");
    expect(applier.applied).toEqual([{ revision: "5", data: "dark" }]);
    expect(handle.getLocalRevision()).toBe("5");
  });

  it("without a provider opens with the topic's source, or leaves it to the sidecar's default", async () => {
    const { client, sidecar } = await connectToFake();
    const applier = recordingApplier();
    const host = createRevisionSync({ topic: "t", channel: "a", connection: client, applier, source: "host" });
    void host.start();
    expect((await sidecar.next("channel.open")).params).toEqual({ channel: "a", topic: "t", source: "host" });
    const options = { callTimeoutMs: 500, retry: { maxAttempts: 2 } };
    const byDefault = createRevisionSync({
      topic: "t",
      channel: "b",
      connection: client,
      applier,
      channelOptions: options,
    });
    void byDefault.start();
    expect((await sidecar.next("channel.open")).params).toEqual({ channel: "b", topic: "t", options });
  });

  it("refuses a provider with a source other than channel", async () => {
    const { client } = await connectToFake();
    expect(() =>
      createRevisionSync({
        topic: "t",
        connection: client,
        applier: recordingApplier(),
        provider: provider({ revision: "1", data: null }),
        source: "store" as "channel",
      }),
    ).toThrow(/provider makes the source "channel"/);
  });

  it("gives each handle a unique default channel name", async () => {
    const { client, sidecar } = await connectToFake();
    const names = new Set<unknown>();
    for (let i = 0; i < 3; i++) {
      void createRevisionSync({ topic: "t", connection: client, applier: recordingApplier() }).start();
      names.add((await sidecar.next("channel.open")).params?.channel);
    }
    expect(names.size).toBe(3);
  });

  it("keeps the default channel name within MAX_NAME_BYTES for a topic at the limit", async () => {
    const { client, sidecar } = await connectToFake();
    const topic = "€".repeat(341); // 1023 bytes: a valid topic, too long to take a suffix
    void createRevisionSync({ topic, connection: client, applier: recordingApplier() }).start();
    const params = (await sidecar.next("channel.open")).params as { channel: string; topic: string };
    expect(params.topic).toBe(topic);
    expect(new TextEncoder().encode(params.channel).length).toBeLessThanOrEqual(MAX_NAME_BYTES);
    expect(params.channel.startsWith("€".repeat(300))).toBe(true);
  });

  it("forwards valid events of its topic as invalidate {channel}; drops other topics and filtered ones", async () => {
    const seen: unknown[] = [];
    const { sidecar, subscriber } = await startedHandle();
    subscriber.emit({ topic: "other-topic", revision: "9" });
    subscriber.emit({ topic: "app-config", revision: "6", sourceId: "window:2", timestampMs: 1, extra: "kept" });
    const invalidate = await sidecar.next("invalidate");
    expect(invalidate.id).toBeUndefined(); // a notification
    expect(invalidate.params).toEqual({
      topic: "app-config",
      revision: "6",
      sourceId: "window:2",
      timestampMs: 1,
      extra: "kept",
      channel: "w1/app-config",
    });
    expect(sidecar.received.filter((m) => m.method === "invalidate")).toHaveLength(1);

    const filtered = await startedFilteredHandle((event) => {
      seen.push(event);
      return (event as { revision: string }).revision !== "7";
    });
    filtered.subscriber.emit({ topic: "app-config", revision: "7" });
    filtered.subscriber.emit({ topic: "app-config", revision: "8" });
    expect((await filtered.sidecar.next("invalidate")).params?.revision).toBe("8");
    expect(seen).toEqual([
      { topic: "app-config", revision: "7" },
      { topic: "app-config", revision: "8" },
    ]);
  });

  it("never throws on garbage events: reports them as protocol errors and keeps going", async () => {
    const errors: SyncErrorContext[] = [];
    const { sidecar, subscriber } = await startedHandle({ onError: (context) => errors.push(context) });
    const garbage: unknown[] = [
      null,
      undefined,
      "42",
      7,
      [],
      {},
      { topic: "", revision: "1" },
      { topic: "   ", revision: "1" },
      { topic: 5, revision: "1" },
      { topic: "app-config" },
      { topic: "app-config", revision: 42 },
      { topic: "app-config", revision: "007" },
      { topic: "app-config", revision: "18446744073709551616" },
      { topic: "app-config", revision: "1e3" },
      { topic: "app-config", revision: "x".repeat(100_000) },
    ];
    for (const event of garbage) {
      expect(() => subscriber.emit(event)).not.toThrow();
    }
    expect(errors).toHaveLength(garbage.length);
    for (const context of errors) {
      expect(context.phase).toBe("protocol");
      expect(context.topic).toBe("app-config");
      expect(context.channel).toBe("w1/app-config");
      expect(context.error).toBeInstanceOf(RpcError);
    }
    expect(errors[11]?.error).toMatchObject({ message: expect.stringMatching(/revision: "007" is not a canonical/) });
    expect(JSON.stringify(errors[14]?.sourceEvent).length).toBeLessThan(1100); // bounded echo
    subscriber.emit({ topic: "app-config", revision: "6" });
    expect((await sidecar.next("invalidate")).params?.revision).toBe("6");
  });

  it("reports a throwing shouldRefresh as a protocol error and drops that event", async () => {
    const errors: SyncErrorContext[] = [];
    const { subscriber, sidecar } = await startedFilteredHandle(
      (event) => {
        if ((event as { revision: string }).revision === "6") throw new Error("filter bug");
        return true;
      },
      (context) => errors.push(context),
    );
    subscriber.emit({ topic: "app-config", revision: "6" });
    subscriber.emit({ topic: "app-config", revision: "7" });
    expect((await sidecar.next("invalidate")).params?.revision).toBe("7");
    expect(errors.map((e) => [e.phase, (e.error as Error).message])).toEqual([["protocol", "filter bug"]]);
  });

  it("holds events that arrive during start and sends them once the channel is open", async () => {
    const { client, sidecar } = await connectToFake();
    const subscriber = scriptedSubscriber();
    const handle = createRevisionSync({
      topic: "app-config",
      channel: "w1",
      connection: client,
      subscriber,
      provider: provider({ revision: "5", data: 1 }),
      applier: recordingApplier(),
    });
    const started = handle.start();
    const open = await sidecar.next("channel.open");
    subscriber.emit({ topic: "app-config", revision: "6" });
    await serveOpen(sidecar, open);
    await within(started, "start");
    const invalidate = await sidecar.next("invalidate");
    expect(invalidate.params).toEqual({ topic: "app-config", revision: "6", channel: "w1" });
    // Sent after the open's answer: the sidecar guarantees it reaches the channel then.
    const openIndex = sidecar.received.indexOf(open);
    expect(sidecar.received.indexOf(invalidate)).toBeGreaterThan(openIndex);
  });

  it("advances the local revision only on a successful apply; a failed apply is answered as an error", async () => {
    const { sidecar, applier, handle } = await startedHandle();
    applier.failNext = new Error("store rejected it");
    const failed = await sidecar.call("apply", {
      channel: "w1/app-config",
      topic: "app-config",
      revision: "6",
      data: { theme: "x" },
    });
    expect(failed.error?.message).toBe("store rejected it");
    expect(handle.getLocalRevision()).toBe("5");
    const ok = await sidecar.call("apply", {
      channel: "w1/app-config",
      topic: "app-config",
      revision: "7",
      data: { theme: "y" },
    });
    expect(ok.error).toBeUndefined();
    expect(handle.getLocalRevision()).toBe("7");
    const bad = await sidecar.call("apply", {
      channel: "w1/app-config",
      topic: "app-config",
      revision: "08",
      data: {},
    });
    expect(bad.error?.code).toBe(ErrorCodes.InvalidParams);
    expect(applier.applied.map((a) => a.revision)).toEqual(["5", "7"]);
  });

  it("stop is synchronous: an apply already on the wire is refused, never applied, and the channel is closed", async () => {
    const { sidecar, subscriber, applier, handle } = await startedHandle();
    const onWire = sidecar.call("apply", {
      channel: "w1/app-config",
      topic: "app-config",
      revision: "9",
      data: { theme: "late" },
    });
    handle.stop(); // the apply is sent but not delivered yet: the memory link delivers on a later tick
    const answer = await onWire;
    expect(answer.error?.code).toBe(ErrorCodes.UnknownChannel);
    expect(applier.applied.map((a) => a.revision)).toEqual(["5"]);
    expect(handle.getLocalRevision()).toBe("5");
    expect(subscriber.unsubscribed).toBe(1);
    const close = await sidecar.next("channel.close");
    expect(close.params).toEqual({ channel: "w1/app-config" });
    subscriber.emitAnyway({ topic: "app-config", revision: "10" });
    const snapshot = await sidecar.call("getSnapshot", { topic: "app-config", channel: "w1/app-config" });
    expect(snapshot.error?.code).toBe(ErrorCodes.UnknownChannel);
    expect(sidecar.received.some((m) => m.method === "invalidate")).toBe(false);
    handle.stop(); // twice is fine
    await expect(handle.start()).rejects.toBeInstanceOf(StoppedError);
    await expect(handle.refresh()).resolves.toBeUndefined(); // as the seed: not an error after stop
  });

  it("a stop during a pending subscribe unsubscribes as soon as it resolves and never opens", async () => {
    const { client, sidecar } = await connectToFake();
    const hold = gate();
    const subscriber = scriptedSubscriber(hold);
    const handle = createRevisionSync({
      topic: "t",
      channel: "w1",
      connection: client,
      subscriber,
      applier: recordingApplier(),
    });
    const started = handle.start();
    expect(subscriber.subscribed).toBe(1);
    handle.stop();
    expect(subscriber.unsubscribed).toBe(0); // nothing to unsubscribe yet
    hold.open();
    await expect(within(started, "start")).rejects.toBeInstanceOf(StoppedError);
    expect(subscriber.unsubscribed).toBe(1);
    // Prove nothing was sent: a request sent now is the first message the sidecar sees.
    void client.listChannels();
    await sidecar.next("channel.list");
    expect(sidecar.received.map((m) => m.method)).toEqual(["channel.list"]);
  });

  it("a stop during a pending channel.open closes the channel at once; the open then fails", async () => {
    const { client, sidecar } = await connectToFake();
    const subscriber = scriptedSubscriber();
    const handle = createRevisionSync({
      topic: "t",
      channel: "w1",
      connection: client,
      subscriber,
      applier: recordingApplier(),
    });
    const started = handle.start();
    const open = await sidecar.next("channel.open");
    handle.stop();
    const close = await sidecar.next("channel.close");
    sidecar.respondError(open.id ?? null, ErrorCodes.UnknownChannel, "closed while opening");
    sidecar.respond(close.id ?? null, { channel: "w1", localRevision: "0" });
    await expect(within(started, "start")).rejects.toBeInstanceOf(StoppedError);
    expect(subscriber.unsubscribed).toBe(1);
  });

  it("a close that beat the open to the sidecar is sent again once the open succeeded", async () => {
    const { client, sidecar } = await connectToFake();
    const handle = createRevisionSync({ topic: "t", channel: "w1", connection: client, applier: recordingApplier() });
    const started = handle.start();
    const open = await sidecar.next("channel.open");
    handle.stop();
    const close = await sidecar.next("channel.close");
    sidecar.respondError(close.id ?? null, ErrorCodes.UnknownChannel, "unknown channel");
    sidecar.respond(open.id ?? null, { channel: "w1", topic: "t", source: "store", localRevision: "0" });
    await expect(within(started, "start")).rejects.toBeInstanceOf(StoppedError);
    const again = await sidecar.next("channel.close", "the second channel.close");
    expect(again.params).toEqual({ channel: "w1" });
  });

  it("a failed subscribe rejects start, reports phase subscribe and leaves nothing behind", async () => {
    const { client, sidecar } = await connectToFake();
    const errors: SyncErrorContext[] = [];
    let attempts = 0;
    const subscriber = {
      async subscribe() {
        attempts++;
        if (attempts === 1) throw new Error("bus down");
        return () => {};
      },
    };
    const handle = createRevisionSync({
      topic: "t",
      channel: "w1",
      connection: client,
      subscriber,
      applier: recordingApplier(),
      onError: (context) => errors.push(context),
    });
    await expect(handle.start()).rejects.toThrow("bus down");
    expect(errors.map((e) => e.phase)).toEqual(["subscribe"]);
    const refused = await sidecar.call("apply", { channel: "w1", topic: "t", revision: "1", data: 1 });
    expect(refused.error?.code).toBe(ErrorCodes.UnknownChannel);
    // Start may be called again, and works.
    const again = handle.start();
    const open = await sidecar.next("channel.open");
    sidecar.respond(open.id ?? null, { channel: "w1", topic: "t", source: "store", localRevision: "0" });
    await within(again, "second start");
  });

  it("a failed channel.open rejects start with the RpcError, unsubscribes and resets the local revision", async () => {
    const { client, sidecar } = await connectToFake();
    const subscriber = scriptedSubscriber();
    const applier = recordingApplier();
    const handle = createRevisionSync({
      topic: "t",
      channel: "w1",
      connection: client,
      subscriber,
      provider: provider({ revision: "3", data: 1 }),
      applier,
    });
    const started = handle.start();
    const open = await sidecar.next("channel.open");
    await sidecar.call("apply", { channel: "w1", topic: "t", revision: "3", data: 1 });
    expect(handle.getLocalRevision()).toBe("3");
    sidecar.respondError(open.id ?? null, ErrorCodes.SyncFailed, "first snapshot failed", { phase: "getSnapshot" });
    const error = await started.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.SyncFailed, data: { phase: "getSnapshot" } });
    expect(subscriber.unsubscribed).toBe(1);
    expect(handle.getLocalRevision()).toBe("0");
    subscriber.emitAnyway({ topic: "t", revision: "4" }); // ignored after a failed start, no throw
    const refused = await sidecar.call("apply", { channel: "w1", topic: "t", revision: "4", data: 1 });
    expect(refused.error?.code).toBe(ErrorCodes.UnknownChannel);
  });

  it("hands the sidecar's error notifications for its channel to onError; a throwing onError breaks nothing", async () => {
    const errors: SyncErrorContext[] = [];
    const { sidecar, subscriber } = await startedHandle({
      onError: (context) => {
        errors.push(context);
        throw new Error("onError bug");
      },
    });
    sidecar.notify("error", { phase: "apply", channel: "someone-else", error: { message: "not mine" } });
    sidecar.notify("error", {
      phase: "getSnapshot",
      channel: "w1/app-config",
      topic: "app-config",
      error: { code: -32603, message: "provider failed", data: { why: 1 } },
      localRevision: "5",
      attempt: 1,
      willRetry: true,
      nextDelayMs: 100,
    });
    sidecar.notify("error", { phase: "protocol", channel: "w1/app-config", error: { message: "no code" } });
    subscriber.emit({ topic: "app-config", revision: "6" });
    await sidecar.next("invalidate"); // the handle still works after onError threw
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatchObject({
      phase: "getSnapshot",
      channel: "w1/app-config",
      topic: "app-config",
      localRevision: "5",
      attempt: 1,
      willRetry: true,
      nextDelayMs: 100,
    });
    expect(errors[0]?.error).toBeInstanceOf(RpcError);
    expect(errors[0]?.error).toMatchObject({ code: -32603, message: "provider failed", data: { why: 1 } });
    expect(errors[1]?.error).toBeInstanceOf(Error);
    expect(errors[1]?.error).toMatchObject({ message: "no code" });
  });

  it("refresh asks the sidecar; before start it rejects", async () => {
    const { client, sidecar } = await connectToFake();
    const idle = createRevisionSync({ topic: "t", connection: client, applier: recordingApplier() });
    await expect(idle.refresh()).rejects.toThrow(/not started/);
    const { handle, sidecar: fake } = await startedHandle();
    const refreshed = handle.refresh();
    const request = await fake.next("channel.refresh");
    expect(request.params).toEqual({ channel: "w1/app-config" });
    fake.respond(request.id ?? null, { channel: "w1/app-config", localRevision: "5" });
    await within(refreshed, "refresh");
    const failing = handle.refresh();
    const second = await fake.next("channel.refresh");
    fake.respondError(second.id ?? null, ErrorCodes.SyncFailed, "refresh failed");
    await expect(failing).rejects.toMatchObject({ code: ErrorCodes.SyncFailed });
    expect(sidecar.received).toHaveLength(0);
  });

  it("a second start is the first one, already resolved", async () => {
    const { handle, sidecar } = await startedHandle();
    await within(handle.start(), "the second start");
    expect(sidecar.received.filter((m) => m.method === "channel.open")).toHaveLength(1);
  });
});

async function startedFilteredHandle(
  shouldRefresh: (event: unknown) => boolean,
  onError?: (context: SyncErrorContext) => void,
) {
  return startedHandle(onError === undefined ? { shouldRefresh } : { shouldRefresh, onError });
}
