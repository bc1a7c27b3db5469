import { afterEach, describe, expect, it } from "vitest";
import { connect, type StateSyncClient } from "../../src/client.js";
import { ErrorCodes, RpcError } from "../../src/errors.js";
import type { JsonRpcMessage, Link } from "../../src/link.js";
import { createMemoryLinkPair } from "../../src/links/memory.js";
import type { ChannelStatus } from "../../src/protocol.js";
import { createSidecarHost } from "../../src/relay.js";
import { createRevisionSync, type RevisionSyncOptions } from "../../src/revision-sync.js";
import { gate, within } from "../helpers/async.js";
import { disposeAll, type Recorded, type RunningSidecar, startSidecar } from "./harness.js";

// Issue 15 end to end: the SDK's deltas against the real binary (docs/protocol.md, "Deltas
// and selected paths"). The transcript of every test is checked against the schema.

afterEach(disposeAll);

/** A state whose full data is far larger than a one-leaf patch: deltas pay off. */
function bigState(theme: string) {
  return { theme, rows: Array.from({ length: 200 }, (_, i) => ({ id: i, label: `row ${i}`, done: false })) };
}

/** An applier that keeps what it got and can be awaited for a revision. */
function keepingApplier() {
  const seen: { revision: string; data: unknown; patch?: unknown; baseRevision?: string }[] = [];
  const waiters: { revision: string; open: () => void }[] = [];
  return {
    seen,
    apply(envelope: { revision: string; data: unknown; patch?: unknown; baseRevision?: string }) {
      seen.push(envelope);
      for (const waiter of waiters.filter((w) => w.revision === envelope.revision)) waiter.open();
    },
    reached(revision: string): Promise<void> {
      if (seen.some((e) => e.revision === revision)) return Promise.resolve();
      const arrived = gate();
      waiters.push({ revision, open: () => arrived.open() });
      return within(arrived.promise, `apply of revision ${revision}`);
    },
  };
}

/** The sidecar's apply requests to a channel, as the wire carried them. */
function appliesTo(transcript: Recorded[], channel: string): Record<string, unknown>[] {
  return transcript
    .filter((r) => r.from === "sidecar" && r.message.method === "apply")
    .map((r) => r.message.params as Record<string, unknown>)
    .filter((params) => params.channel === channel);
}

/**
 * The link to the sidecar with one change on the way in: the first delta apply that
 * `tamper` returns a replacement for reaches the client as that replacement. The
 * transcript keeps what the sidecar really sent.
 */
function tampering(link: Link, tamper: (params: Record<string, unknown>) => Record<string, unknown> | undefined): Link {
  let done = false;
  return {
    send: (message: JsonRpcMessage) => link.send(message),
    onMessage: (handler) =>
      link.onMessage((value) => {
        const message = value as { method?: string; params?: Record<string, unknown> };
        if (!done && message.method === "apply" && message.params?.patch !== undefined) {
          const replaced = tamper(message.params);
          if (replaced !== undefined) {
            done = true;
            handler({ ...message, params: replaced });
            return;
          }
        }
        handler(value);
      }),
    onClose: (handler) => link.onClose(handler),
    close: () => link.close(),
  };
}

/**
 * The channel's status once the sidecar has read the window's answer for `revision`
 * (the applier runs before the answer is sent): bounded in tries, no timing asserted.
 */
async function settled(client: StateSyncClient, channel: string, revision: string): Promise<ChannelStatus> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const status = await client.channelStatus(channel);
    if (status.localRevision === revision) return status;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`channel ${channel} never reached revision ${revision} in the sidecar`);
}

async function syncing(
  client: StateSyncClient,
  channel: string,
  extra: Partial<Pick<RevisionSyncOptions<unknown>, "deltas" | "paths">> = {},
) {
  const applier = keepingApplier();
  const handle = createRevisionSync({ topic: "doc", channel, connection: client, applier, source: "store", ...extra });
  await within(handle.start(), `start ${channel}`);
  return { applier, handle };
}

async function connected(link?: (link: Link) => Link): Promise<{ sidecar: RunningSidecar; client: StateSyncClient }> {
  const sidecar = startSidecar();
  const client = await within(connect(link === undefined ? sidecar.link : link(sidecar.link)), "connect");
  return { sidecar, client };
}

describe("deltas against the real statesync-sidecar", () => {
  it("are on by default: a one-leaf state.patch reaches the window as a patch, the applier gets the full data", async () => {
    const { sidecar, client } = await connected();
    expect(client.server.capabilities.deltas).toMatchObject({ version: 1, minSavingsRatio: 0.5 });
    await client.set("doc", bigState("dark"));
    const { applier, handle } = await syncing(client, "w1");
    const { revision } = await client.patch("doc", [{ op: "replace", path: "/theme", value: "light" }], {
      expectedRevision: "1",
    });
    await applier.reached(revision);
    expect(applier.seen.at(-1)).toEqual({
      revision,
      epoch: expect.any(String),
      data: bigState("light"),
      patch: [{ op: "replace", path: "/theme", value: "light" }],
      baseRevision: "1",
    });
    expect(handle.getLocalRevision()).toBe(revision);

    const [first, second] = appliesTo(sidecar.transcript, "w1");
    expect(first).toHaveProperty("data");
    expect(second).not.toHaveProperty("data");
    const bytes = (value: unknown) => JSON.stringify(value).length;
    expect(bytes(second)).toBeLessThan(bytes(first) / 20);
    const status = await settled(client, "w1", revision);
    expect(status.counters).toMatchObject({ deltas: 1, deltaRejections: 0 });
    handle.stop();
    await sidecar.finish();
  });

  it("a delta the window cannot use is answered -32011, and the sidecar heals it with the full data at once", async () => {
    // On purpose: the first delta reaches the client with a base it does not hold, the
    // second with a patch that does not apply. The real sidecar must resend each in full.
    let tampered = 0;
    const { sidecar, client } = await connected((link) =>
      tampering(link, (params) => {
        tampered++;
        return { ...params, baseRevision: "999" };
      }),
    );
    await client.set("doc", bigState("dark"));
    const { applier } = await syncing(client, "w1");
    const { revision } = await client.patch("doc", [{ op: "replace", path: "/theme", value: "light" }]);
    await applier.reached(revision);
    expect(tampered).toBe(1);
    const answers = sidecar.transcript.filter(
      (r) => r.from === "host" && (r.message.error as { code?: number } | undefined)?.code === ErrorCodes.DeltaRejected,
    );
    expect(answers.map((r) => r.message.error)).toEqual([
      {
        code: ErrorCodes.DeltaRejected,
        message: expect.stringContaining("baseMismatch"),
        data: { reason: "baseMismatch", localRevision: "1" },
      },
    ]);
    // The applier saw revision 2 once, in full, never the tampered delta.
    expect(applier.seen.map((e) => [e.revision, e.data])).toEqual([
      ["1", bigState("dark")],
      [revision, bigState("light")],
    ]);
    expect(appliesTo(sidecar.transcript, "w1").at(-1)).toMatchObject({ revision, data: bigState("light") });
    const status = await settled(client, "w1", revision);
    expect(status.counters).toMatchObject({ deltaRejections: 1 });
    // And deltas go on from the healed revision.
    const next = await client.patch("doc", [{ op: "replace", path: "/rows/0/done", value: true }]);
    await applier.reached(next.revision);
    expect(applier.seen.at(-1)).toMatchObject({ baseRevision: revision });
    await sidecar.finish();
  });

  it("a patch that fails to apply in the window is answered patchFailed and healed the same way", async () => {
    const { sidecar, client } = await connected((link) =>
      tampering(link, (params) => ({ ...params, patch: [{ op: "remove", path: "/not-there" }] })),
    );
    await client.set("doc", bigState("dark"));
    const { applier } = await syncing(client, "w1");
    const { revision } = await client.patch("doc", [{ op: "replace", path: "/theme", value: "light" }]);
    await applier.reached(revision);
    const rejected = sidecar.transcript.find(
      (r) => r.from === "host" && (r.message.error as { code?: number } | undefined)?.code === ErrorCodes.DeltaRejected,
    );
    expect(rejected?.message.error).toMatchObject({ data: { reason: "patchFailed", localRevision: "1" } });
    expect(applier.seen.at(-1)).toEqual({ revision, epoch: expect.any(String), data: bigState("light") });
    await sidecar.finish();
  });

  it("deltas: false keeps every apply full", async () => {
    const { sidecar, client } = await connected();
    await client.set("doc", bigState("dark"));
    const { applier } = await syncing(client, "w1", { deltas: false });
    const { revision } = await client.patch("doc", [{ op: "replace", path: "/theme", value: "light" }]);
    await applier.reached(revision);
    const opens = sidecar.transcript.filter((r) => r.from === "host" && r.message.method === "channel.open");
    expect(opens.map((r) => r.message.params)).toEqual([{ channel: "w1", topic: "doc", source: "store" }]);
    expect(appliesTo(sidecar.transcript, "w1").every((params) => "data" in params)).toBe(true);
    expect(applier.seen.at(-1)).toEqual({ revision, epoch: expect.any(String), data: bigState("light") });
    await sidecar.finish();
  });

  it("paths: the window gets the projection, and an apply only when it changed", async () => {
    const { sidecar, client } = await connected();
    await client.set("doc", { settings: { theme: "dark", font: "mono" }, count: 1 });
    const { applier, handle } = await syncing(client, "w1", { paths: ["/settings/theme"] });
    expect(applier.seen.map((e) => e.data)).toEqual([{ settings: { theme: "dark" } }]);
    // Outside the paths: nothing is sent, yet the sidecar counts the channel at revision 2
    // (it holds revision 2's projection); the window's own revision stays the last applied.
    await client.patch("doc", [{ op: "replace", path: "/count", value: 2 }]);
    expect((await settled(client, "w1", "2")).localRevision).toBe("2");
    expect(handle.getLocalRevision()).toBe("1");
    const { revision } = await client.patch("doc", [{ op: "replace", path: "/settings/theme", value: "light" }]);
    await applier.reached(revision);
    expect(applier.seen.map((e) => [e.revision, e.data])).toEqual([
      ["1", { settings: { theme: "dark" } }],
      [revision, { settings: { theme: "light" } }],
    ]);
    expect(appliesTo(sidecar.transcript, "w1").map((params) => params.revision)).toEqual(["1", revision]);
    expect(handle.getLocalRevision()).toBe(revision);
    await sidecar.finish();
  });

  it("state.patch: a failed test is -32005 naming the path; an op that does not fit is -32602", async () => {
    const { sidecar, client } = await connected();
    await client.set("doc", { theme: "dark" });
    const conflict = await client
      .patch("doc", [
        { op: "test", path: "/theme", value: "light" },
        { op: "replace", path: "/theme", value: "blue" },
      ])
      .catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(RpcError);
    expect(conflict).toMatchObject({
      code: ErrorCodes.RevisionConflict,
      data: { currentRevision: "1", path: "/theme", index: 0 },
    });
    const invalid = await client.patch("doc", [{ op: "replace", path: "/missing", value: 1 }]).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ code: ErrorCodes.InvalidParams, data: { field: "patch", index: 0 } });
    expect(await client.get("doc")).toMatchObject({ revision: "1", data: { theme: "dark" } });
    await sidecar.finish();
  });

  it("through the relay: a window's channel gets deltas, and state.patch from a window is a write", async () => {
    const sidecar = startSidecar();
    const host = createSidecarHost({ link: sidecar.link });
    const [windowEnd, relayEnd] = createMemoryLinkPair();
    host.attachWindow(relayEnd, { access: { open: ["doc"], write: ["doc"] } });
    const window = await within(connect(windowEnd), "window connect");
    expect(window.server.capabilities.deltas).toBeDefined();
    await window.set("doc", bigState("dark"));
    const { applier } = await syncing(window, "w1");
    const { revision } = await window.patch("doc", [{ op: "replace", path: "/theme", value: "light" }]);
    await applier.reached(revision);
    expect(applier.seen.at(-1)).toMatchObject({ data: bigState("light"), baseRevision: "1" });
    host.close();
    await sidecar.finish();
  });
});
