import { describe, expect, it } from "vitest";
import { connect, type StateSyncClient } from "../src/client.js";
import { ConnectionClosedError, ErrorCodes } from "../src/errors.js";
import type { JsonRpcMessage, Link } from "../src/link.js";
import { createMemoryLinkPair } from "../src/links/memory.js";
import type { ErrorNotification } from "../src/protocol.js";
import { createSidecarHost, type SidecarHostOptions } from "../src/relay.js";
import { createRevisionSync } from "../src/revision-sync.js";
import { gate, within } from "./helpers/async.js";
import { FakeSidecar } from "./helpers/fake-sidecar.js";

/** A host relaying to a fake sidecar, and a way to attach windows to it. */
function setup(options: Omit<SidecarHostOptions, "link"> = {}) {
  const [hostEnd, sidecarEnd] = createMemoryLinkPair();
  const sidecar = new FakeSidecar(sidecarEnd);
  const host = createSidecarHost({ link: hostEnd, ...options });
  const openWindow = async (): Promise<{ client: StateSyncClient; link: Link; detach: () => void }> => {
    const [windowEnd, relayEnd] = createMemoryLinkPair();
    const detach = host.attachWindow(relayEnd);
    const client = await within(connect(windowEnd), "window connect");
    return { client, link: windowEnd, detach };
  };
  return { host, sidecar, openWindow };
}

describe("sidecar host relay", () => {
  it("initializes the sidecar once and answers every window's initialize with that answer", async () => {
    const { host, sidecar, openWindow } = setup();
    const one = await openWindow();
    const two = await openWindow();
    expect(sidecar.initializeCount).toBe(1);
    expect(one.client.server).toEqual(await host.ready);
    expect(two.client.server.protocolVersion).toBe("1");
  });

  it("rewrites request ids so that two windows' requests never collide", async () => {
    const { sidecar, openWindow } = setup();
    const one = await openWindow();
    const two = await openWindow();
    // Both windows use id 2 for their first request after initialize.
    const fromOne = one.client.get("t");
    const fromTwo = two.client.get("t");
    const first = await sidecar.next("state.get");
    const second = await sidecar.next("state.get");
    expect(first.id).not.toBe(second.id);
    sidecar.respond(second.id ?? null, { topic: "t", revision: "2", data: "for two" });
    sidecar.respond(first.id ?? null, { topic: "t", revision: "1", data: "for one" });
    expect(await within(fromOne, "window one's answer")).toMatchObject({ data: "for one" });
    expect(await within(fromTwo, "window two's answer")).toMatchObject({ data: "for two" });
  });

  it("routes getSnapshot {channel} and apply to the window that opened the channel, before the open is answered", async () => {
    const { sidecar, openWindow } = setup();
    const one = await openWindow();
    const two = await openWindow();
    const applied: string[] = [];
    const handle = (client: StateSyncClient, name: string) =>
      createRevisionSync({
        topic: "t",
        channel: name,
        connection: client,
        provider: { getSnapshot: async () => ({ revision: "1", data: `snapshot of ${name}` }) },
        applier: { apply: ({ data }) => void applied.push(`${name} got ${String(data)}`) },
      });
    void handle(one.client, "a").start();
    void handle(two.client, "b").start();
    await sidecar.next("channel.open");
    await sidecar.next("channel.open");
    const fromB = await sidecar.call("getSnapshot", { topic: "t", channel: "b" });
    const fromA = await sidecar.call("getSnapshot", { topic: "t", channel: "a" });
    expect(fromA.result).toEqual({ revision: "1", data: "snapshot of a" });
    expect(fromB.result).toEqual({ revision: "1", data: "snapshot of b" });
    const apply = await sidecar.call("apply", { channel: "b", topic: "t", revision: "1", data: "x" });
    expect(apply.id).toMatch(/^fake-/); // the sidecar gets its own id back
    expect(apply.result).toEqual({});
    expect(applied).toEqual(["b got x"]);
    const nobody = await sidecar.call("apply", { channel: "c", topic: "t", revision: "1", data: "x" });
    expect(nobody.error?.code).toBe(ErrorCodes.UnknownChannel);
  });

  it("answers getSnapshot {topic} itself, with the host's callback", async () => {
    const withCallback = setup({ getSnapshot: async (topic) => ({ revision: "7", data: { topic }, epoch: "e1" }) });
    const answer = await withCallback.sidecar.call("getSnapshot", { topic: "host-topic" });
    expect(answer.result).toEqual({ revision: "7", data: { topic: "host-topic" }, epoch: "e1" });

    const failing = setup({
      getSnapshot: async () => {
        throw new Error("database down");
      },
    });
    const failed = await failing.sidecar.call("getSnapshot", { topic: "host-topic" });
    expect(failed.error).toEqual({ code: ErrorCodes.InternalError, message: "database down" });

    const without = setup();
    const none = await without.sidecar.call("getSnapshot", { topic: "host-topic" });
    expect(none.error?.code).toBe(ErrorCodes.MethodNotFound);
  });

  it("forwards error notifications to the owning window, and those without a channel to every window", async () => {
    const hostErrors: ErrorNotification[] = [];
    const { sidecar, openWindow } = setup({ onError: (params) => hostErrors.push(params) });
    const one = await openWindow();
    const two = await openWindow();
    void one.client.openChannel({ channel: "a", topic: "t" });
    await sidecar.next("channel.open");
    const seenByOne: ErrorNotification[] = [];
    const seenByTwo: ErrorNotification[] = [];
    const twoGotGlobal = gate();
    one.client.onError((params) => seenByOne.push(params));
    two.client.onError((params) => {
      seenByTwo.push(params);
      twoGotGlobal.open();
    });
    const mine = { phase: "apply", channel: "a", error: { message: "for a" } };
    const orphan = { phase: "apply", channel: "gone", error: { message: "for nobody" } };
    const global = { phase: "protocol", error: { message: "for all" } };
    sidecar.notify("error", mine);
    sidecar.notify("error", orphan);
    sidecar.notify("error", global);
    await within(twoGotGlobal.promise, "the global error in window two");
    expect(seenByOne).toEqual([mine, global]);
    expect(seenByTwo).toEqual([global]);
    expect(hostErrors).toEqual([orphan, global]);
  });

  it("keeps windows out of each other's channels and from shutting the shared sidecar down", async () => {
    const { sidecar, openWindow } = setup();
    const one = await openWindow();
    const two = await openWindow();
    void one.client.openChannel({ channel: "a", topic: "t" });
    await sidecar.next("channel.open");
    await expect(two.client.openChannel({ channel: "a", topic: "t" })).rejects.toMatchObject({
      code: ErrorCodes.ChannelExists,
    });
    await expect(two.client.closeChannel("a")).rejects.toMatchObject({ code: ErrorCodes.UnknownChannel });
    await expect(two.client.shutdown()).rejects.toMatchObject({ code: ErrorCodes.InvalidRequest });
  });

  it("when a window goes away: answers its pending calls at once, closes its channels, routes nothing more to it", async () => {
    const { sidecar, openWindow } = setup();
    const one = await openWindow();
    const opened = one.client.openChannel({ channel: "a", topic: "t" });
    const open = await sidecar.next("channel.open");
    sidecar.respond(open.id ?? null, { channel: "a", topic: "t", source: "store", localRevision: "0" });
    await within(opened, "open");
    const applyArrived = gate();
    one.client.serveChannel("a", {
      apply: () => {
        applyArrived.open();
        return new Promise(() => {}); // an apply that never finishes
      },
    });
    const stuck = sidecar.call("apply", { channel: "a", topic: "t", revision: "1", data: 1 });
    await within(applyArrived.promise, "the apply to reach the window");
    one.link.close();
    const answer = await stuck;
    expect(answer.error?.code).toBe(ErrorCodes.UnknownChannel);
    const close = await sidecar.next("channel.close", "channel.close for the closed window's channel");
    expect(close.params).toEqual({ channel: "a" });
    const later = await sidecar.call("apply", { channel: "a", topic: "t", revision: "2", data: 2 });
    expect(later.error?.code).toBe(ErrorCodes.UnknownChannel);
  });

  it("closes a channel whose open was still pending when its window went away, once it opened", async () => {
    const { sidecar, openWindow } = setup();
    const one = await openWindow();
    void one.client.openChannel({ channel: "a", topic: "t" }).catch(() => {});
    const open = await sidecar.next("channel.open");
    one.detach();
    sidecar.respond(open.id ?? null, { channel: "a", topic: "t", source: "store", localRevision: "0" });
    const close = await sidecar.next("channel.close");
    expect(close.params).toEqual({ channel: "a" });
  });

  it("closes every window when the sidecar link closes; their pending requests reject", async () => {
    const { sidecar, openWindow } = setup();
    const one = await openWindow();
    const pending = one.client.get("t");
    await sidecar.next("state.get");
    const closed = gate();
    one.client.onClose(() => closed.open());
    sidecar.link.close();
    await expect(within(pending, "rejection")).rejects.toBeInstanceOf(ConnectionClosedError);
    await within(closed.promise, "the window to close");
  });

  it("gives the host its own client; close() closes every window's channels, then the sidecar link", async () => {
    const { host, sidecar, openWindow } = setup();
    const hostClient = await within(host.connect(), "host connect");
    const written = hostClient.set("app-config", { theme: "dark" });
    const set = await sidecar.next("state.set");
    sidecar.respond(set.id ?? null, { topic: "app-config", revision: "1" });
    expect(await written).toEqual({ topic: "app-config", revision: "1" });

    const one = await openWindow();
    const opened = one.client.openChannel({ channel: "a", topic: "t" });
    const open = await sidecar.next("channel.open");
    sidecar.respond(open.id ?? null, { channel: "a", topic: "t", source: "store", localRevision: "0" });
    await opened;
    const sidecarClosed = gate();
    sidecar.link.onClose(() => sidecarClosed.open());
    host.close();
    expect((await sidecar.next("channel.close")).params).toEqual({ channel: "a" });
    await within(sidecarClosed.promise, "the sidecar link to close");
  });

  describe("one reading of each window message (issue 19)", () => {
    /** A window that writes raw messages, as JSON values or as JSON text. */
    const rawWindow = (host: ReturnType<typeof setup>["host"]) => {
      const [windowEnd, relayEnd] = createMemoryLinkPair();
      host.attachWindow(relayEnd);
      const received: Record<string, unknown>[] = [];
      const arrived: (() => void)[] = [];
      windowEnd.onMessage((message) => {
        received.push(message as Record<string, unknown>);
        for (const wake of arrived.splice(0)) wake();
      });
      const send = (message: unknown) => windowEnd.send(message as JsonRpcMessage);
      const nextReceived = async (what: string): Promise<Record<string, unknown>> => {
        const seen = received.length;
        while (received.length === seen) {
          await within(new Promise<void>((wake) => arrived.push(wake)), what);
        }
        return received[seen] as Record<string, unknown>;
      };
      return { send, received, nextReceived };
    };

    it("passes on the members of a window's getSnapshot answer the sidecar reads, and refuses a case variant of one", async () => {
      const { host, sidecar } = setup();
      const window = rawWindow(host);
      window.send({
        jsonrpc: "2.0",
        id: 1,
        method: "channel.open",
        params: { channel: "a", topic: "t", source: "channel" },
      });
      await sidecar.next("channel.open");

      const first = sidecar.call("getSnapshot", { topic: "t", channel: "a" });
      const asked = await window.nextReceived("getSnapshot at the window");
      window.send({ jsonrpc: "2.0", id: asked.id, result: { revision: "1", data: { n: 1 }, Revision: "9" } });
      const refused = await first;
      expect(refused.error?.code).toBe(ErrorCodes.InvalidParams);
      expect(refused.error?.message).toContain('"result.Revision" differs only in case from "revision"');

      const second = sidecar.call("getSnapshot", { topic: "t", channel: "a" });
      const askedAgain = await window.nextReceived("getSnapshot at the window");
      window.send({ jsonrpc: "2.0", id: askedAgain.id, result: { revision: "2", data: { n: 2 }, note: "ignored" } });
      expect((await second).result).toEqual({ revision: "2", data: { n: 2 } });
    });

    it("answers the sidecar, not the window, when a window's answer cannot be read", async () => {
      const hostErrors: ErrorNotification[] = [];
      const { host, sidecar } = setup({ onError: (params) => hostErrors.push(params) });
      const window = rawWindow(host);
      window.send({ jsonrpc: "2.0", id: 1, method: "channel.open", params: { channel: "a", topic: "t" } });
      await sidecar.next("channel.open");
      const apply = sidecar.call("apply", { channel: "a", topic: "t", revision: "1", data: 1 });
      const asked = await window.nextReceived("apply at the window");
      window.send({ jsonrpc: "2.0", id: asked.id, result: {}, Error: { code: 1, message: "x" } });
      const answer = await apply;
      expect(answer.error?.message).toContain('the window\'s apply answer was refused by the relay: member "Error"');
      const told =
        window.received.find((m) => m.method === "error") ??
        (await window.nextReceived("the relay's report to the window"));
      expect(told).toMatchObject({ method: "error", params: { phase: "protocol" } });
      expect(hostErrors).toEqual([told.params]);
      expect(window.received.filter((m) => m.method === undefined)).toEqual([]);
    });

    it("reads a window's JSON text itself: a member named twice is refused, escapes are read as JSON reads them", async () => {
      const { host, sidecar } = setup();
      const window = rawWindow(host);
      window.send('{"jsonrpc":"2.0","id":1,"method":"channel.close","params":{"channel":"a","\\u0063hannel":"b"}}');
      const refused = await window.nextReceived("the refusal");
      expect(refused).toMatchObject({ id: 1, error: { code: ErrorCodes.InvalidRequest } });
      expect((refused.error as { message: string }).message).toContain('member "params.channel" appears twice');

      window.send('{"jsonrpc":"2.0","id":2,"method":"channel.status","params":{"\\u0063hannel":"\\u0061"}}');
      const status = await sidecar.next("channel.status");
      expect(status.params).toEqual({ channel: "a" });
    });

    it("forwards only the members it read: a window's extra members never reach the sidecar", async () => {
      const { host, sidecar } = setup();
      const window = rawWindow(host);
      window.send({ jsonrpc: "2.0", method: "invalidate", params: { topic: "t", revision: "3", fromApp: { x: 1 } } });
      const forwarded = await sidecar.next("invalidate");
      expect(forwarded.params).toEqual({ topic: "t", revision: "3" });
      window.send({ jsonrpc: "2.0", id: 5, method: "channel.open", params: { channel: "a", topic: "t", optoins: {} } });
      const refused = await window.nextReceived("the refusal");
      expect(refused).toMatchObject({ id: 5, error: { code: ErrorCodes.InvalidParams } });
      expect((refused.error as { message: string }).message).toContain('member "params.optoins" is unknown here');
    });
  });
});
