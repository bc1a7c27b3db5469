import { afterEach, describe, expect, it } from "vitest";
import { connect, type StateSyncClient } from "../../src/client.js";
import { ErrorCodes, RpcError } from "../../src/errors.js";
import type { Snapshot } from "../../src/protocol.js";
import { createRevisionSync, type SyncErrorContext } from "../../src/revision-sync.js";
import { gate, manualSubscriber, until, within } from "../helpers/async.js";
import { MIB } from "../helpers/streams.js";
import { answered, countFromSidecar, disposeAll, type RunningSidecar, startSidecar } from "./harness.js";

afterEach(disposeAll);

async function connected(args: string[] = []): Promise<{ sidecar: RunningSidecar; client: StateSyncClient }> {
  const sidecar = startSidecar(args);
  const client = await within(connect(sidecar.link, { client: { name: "sdk-ts-tests" } }), "connect");
  return { sidecar, client };
}

/** An applier that records revisions and can be awaited for one. */
function watchingApplier<T>() {
  const applied: { revision: string; data: T }[] = [];
  const waiters: { revision: string; open: () => void }[] = [];
  return {
    applied,
    apply({ revision, data }: { revision: string; data: T }) {
      applied.push({ revision, data });
      for (const waiter of waiters.filter((w) => w.revision === revision)) waiter.open();
    },
    reached(revision: string): Promise<void> {
      if (applied.some((a) => a.revision === revision)) return Promise.resolve();
      const arrived = gate();
      waiters.push({ revision, open: () => arrived.open() });
      return within(arrived.promise, `apply of revision ${revision}`);
    },
  };
}

describe("against the real statesync-sidecar", () => {
  it("handshakes protocol v1", async () => {
    const { sidecar, client } = await connected();
    expect(client.server.protocolVersion).toBe("1");
    expect(client.server.server.name).toBe("statesync-sidecar");
    expect(client.server.capabilities.sources).toEqual(expect.arrayContaining(["store", "host", "channel"]));
    await sidecar.finish();
  });

  it("embedded store: set, get, compare-and-set conflict with currentRevision", async () => {
    const { sidecar, client } = await connected();
    const empty = await client.get("app-config");
    expect(empty).toEqual({ topic: "app-config", revision: "0", epoch: expect.any(String) });
    expect(await client.set("app-config", { theme: "dark" })).toEqual({ topic: "app-config", revision: "1" });
    expect(await client.get("app-config")).toEqual({
      topic: "app-config",
      revision: "1",
      epoch: empty.epoch,
      data: { theme: "dark" },
    });
    const conflict = await client.set("app-config", { theme: "light" }, { expectedRevision: "0" }).catch((e) => e);
    expect(conflict).toBeInstanceOf(RpcError);
    expect(conflict).toMatchObject({ code: ErrorCodes.RevisionConflict, data: { currentRevision: "1" } });
    expect(await client.set("app-config", { theme: "light" }, { expectedRevision: "1" })).toMatchObject({
      revision: "2",
    });
    await sidecar.finish();
  });

  it("store topic: every window applies each write; a stopped one never again", async () => {
    const { sidecar, client } = await connected();
    await client.set("app-config", { theme: "dark" });
    const left = watchingApplier<{ theme: string }>();
    const right = watchingApplier<{ theme: string }>();
    const leftSync = createRevisionSync({ topic: "app-config", channel: "left", connection: client, applier: left });
    const rightSync = createRevisionSync({ topic: "app-config", channel: "right", connection: client, applier: right });
    await within(Promise.all([leftSync.start(), rightSync.start()]), "start");
    // Late join: the state written before start is applied by start.
    expect(left.applied).toEqual([{ revision: "1", data: { theme: "dark" } }]);
    expect(leftSync.getLocalRevision()).toBe("1");

    await client.set("app-config", { theme: "light" });
    await Promise.all([left.reached("2"), right.reached("2")]);

    rightSync.stop();
    await until(() => answered(sidecar.transcript, "channel.close"), "channel.close answered");
    await client.set("app-config", { theme: "blue" });
    await left.reached("3");
    const channels = await client.listChannels();
    expect(channels.map((c) => c.channel)).toEqual(["left"]);
    expect(right.applied.map((a) => a.revision)).toEqual(["1", "2"]);
    expect(rightSync.getLocalRevision()).toBe("2");
    leftSync.stop();
    await sidecar.finish();
  });

  it("channel source: the window's provider answers, its subscriber's events are forwarded", async () => {
    const { sidecar, client } = await connected();
    let state: Snapshot<{ count: number }> = { revision: "3", data: { count: 3 } };
    let fetches = 0;
    const { emit, subscriber } = manualSubscriber();
    const applier = watchingApplier<{ count: number }>();
    const errors: SyncErrorContext[] = [];
    const sync = createRevisionSync({
      topic: "counter",
      connection: client,
      subscriber,
      provider: {
        getSnapshot: async () => {
          fetches++;
          return state;
        },
      },
      applier,
      onError: (context) => errors.push(context),
    });
    await within(sync.start(), "start");
    expect(applier.applied).toEqual([{ revision: "3", data: { count: 3 } }]);

    state = { revision: "4", data: { count: 4 } };
    emit({ topic: "counter", revision: "4" });
    await applier.reached("4");
    const fetchesBefore = fetches;
    emit({ topic: "counter", revision: "2" }); // stale: the sidecar ignores it
    emit({ topic: "counter", revision: "04" }); // garbage: reported, not forwarded
    expect(errors.map((e) => e.phase)).toEqual(["protocol"]);
    await within(sync.refresh(), "refresh");
    expect(fetches).toBe(fetchesBefore + 1); // the refresh's fetch only
    expect(applier.applied.map((a) => a.revision)).toEqual(["3", "4"]);
    sync.stop();
    await sidecar.finish();
  });

  it("reports the sidecar's errors for the channel to onError: a failing provider, a failing applier", async () => {
    const { sidecar, client } = await connected();
    let failFetch = false;
    let failApply = false;
    let revision = 1;
    const { emit, subscriber } = manualSubscriber();
    const errors: SyncErrorContext[] = [];
    const reported = { count: 0, next: gate() };
    const sync = createRevisionSync({
      topic: "flaky",
      channel: "w1",
      connection: client,
      subscriber,
      provider: {
        getSnapshot: async () => {
          if (failFetch) throw new Error("backend unavailable");
          return { revision: String(revision), data: revision };
        },
      },
      applier: {
        apply: () => {
          if (failApply) throw new Error("store refused");
        },
      },
      onError: (context) => {
        errors.push(context);
        reported.count++;
        reported.next.open();
      },
    });
    await within(sync.start(), "start");

    failFetch = true;
    emit({ topic: "flaky", revision: "2" });
    await within(reported.next.promise, "the getSnapshot error");
    expect(errors[0]).toMatchObject({ phase: "getSnapshot", channel: "w1", topic: "flaky" });
    expect(errors[0]?.error).toMatchObject({ message: expect.stringMatching(/backend unavailable/) });

    reported.next = gate();
    failFetch = false;
    failApply = true;
    revision = 3;
    emit({ topic: "flaky", revision: "3" });
    await within(reported.next.promise, "the apply error");
    expect(errors[1]).toMatchObject({ phase: "apply", channel: "w1" });
    expect(errors[1]?.error).toMatchObject({ message: expect.stringMatching(/store refused/) });
    expect(sync.getLocalRevision()).toBe("1");
    sync.stop();
    await sidecar.finish();
  });

  it("stop while an apply is running: that apply finishes, nothing is applied after, the channel is closed", async () => {
    const { sidecar, client } = await connected();
    await client.set("q", 1);
    const applying = gate();
    const release = gate();
    let calls = 0;
    const sync = createRevisionSync({
      topic: "q",
      channel: "w1",
      connection: client,
      applier: {
        apply: async () => {
          calls++;
          if (calls === 2) {
            applying.open();
            await release.promise; // hold the second apply while the window stops
          }
        },
      },
    });
    await within(sync.start(), "start");
    await client.set("q", 2);
    await within(applying.promise, "the second apply to start");
    sync.stop();
    release.open();
    await client.set("q", 3); // would be an apply, if anything were left of the channel
    await until(() => answered(sidecar.transcript, "channel.close"), "channel.close answered");
    expect(await client.listChannels()).toEqual([]);
    expect(calls).toBe(2);
    await sidecar.finish();
  });

  it("carries a 1 MiB snapshot from state.set to apply", async () => {
    const { sidecar, client } = await connected();
    const big = { text: "ü✓😀 ".repeat(MIB / 10), list: Array.from({ length: 1000 }, (_, i) => i) };
    const applier = watchingApplier<typeof big>();
    const sync = createRevisionSync({ topic: "big", connection: client, applier });
    await within(sync.start(), "start");
    await client.set("big", big);
    await applier.reached("1");
    expect(applier.applied.at(-1)?.data).toEqual(big);
    sync.stop();
    await sidecar.finish();
  });

  it("a burst of 10,000 window events converges to the last revision with few fetches", async () => {
    const { sidecar, client } = await connected();
    let current = 0;
    const { emit, subscriber } = manualSubscriber();
    const applier = watchingApplier<number>();
    const sync = createRevisionSync({
      topic: "burst",
      connection: client,
      subscriber,
      provider: { getSnapshot: async () => ({ revision: String(current), data: current }) },
      applier,
    });
    await within(sync.start(), "start");
    const fetchesAtStart = countFromSidecar(sidecar.transcript, "getSnapshot");
    for (let i = 1; i <= 10_000; i++) {
      current = i;
      emit({ topic: "burst", revision: String(i) });
    }
    await applier.reached("10000");
    const fetches = countFromSidecar(sidecar.transcript, "getSnapshot") - fetchesAtStart;
    // Coalescing: far fewer fetches than events (the exact number depends on timing).
    expect(fetches).toBeLessThan(1000);
    expect(sync.getLocalRevision()).toBe("10000");
    sync.stop();
    await sidecar.finish();
  });
});
