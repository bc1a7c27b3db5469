import { MessageChannel } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { connect, type StateSyncClient } from "../../src/client.js";
import { ErrorCodes } from "../../src/errors.js";
import type { JsonRpcMessage } from "../../src/link.js";
import { createMessagePortLink } from "../../src/links/message-port.js";
import type { ErrorNotification } from "../../src/protocol.js";
import { AccessDenied, createSidecarHost, type SidecarHost, type WindowAccess } from "../../src/relay.js";
import { createRevisionSync } from "../../src/revision-sync.js";
import { within } from "../helpers/async.js";
import { disposeAll, startSidecar } from "./harness.js";

afterEach(disposeAll);

type Message = Record<string, unknown>;

/** A window that writes whatever it likes on its port, attached with access rules. */
function rawWindow(host: SidecarHost, access?: WindowAccess) {
  const { port1, port2 } = new MessageChannel();
  host.attachWindow(createMessagePortLink(port2), access === undefined ? {} : { access });
  const link = createMessagePortLink(port1);
  const received: Message[] = [];
  const waiting = new Map<unknown, (answer: Message) => void>();
  link.onMessage((value) => {
    const message = value as Message;
    received.push(message);
    if (message.method === "apply" && message.id !== undefined) {
      link.send({ jsonrpc: "2.0", id: message.id, result: {} } as unknown as JsonRpcMessage); // applied
      return;
    }
    const answer = message.method === undefined ? waiting.get(message.id) : undefined;
    if (answer !== undefined) {
      waiting.delete(message.id);
      answer(message);
    }
  });
  let ids = 0;
  const call = (method: string, params: Message): Promise<Message> => {
    const id = `${method}-${++ids}`;
    const answered = new Promise<Message>((resolve) => waiting.set(id, resolve));
    link.send({ jsonrpc: "2.0", id, method, params } as unknown as JsonRpcMessage);
    return within(answered, `the answer to ${method} ${JSON.stringify(params)}`);
  };
  return {
    received,
    call,
    notify: (method: string, params: Message) =>
      link.send({ jsonrpc: "2.0", method, params } as unknown as JsonRpcMessage),
  };
}

async function clientWindow(host: SidecarHost): Promise<StateSyncClient> {
  const { port1, port2 } = new MessageChannel();
  host.attachWindow(createMessagePortLink(port2));
  return within(connect(createMessagePortLink(port1)), "window connect");
}

type Refusal = { code: number; message: string; data?: { rule?: string } };

function refused(answer: Message, code: number, ...words: string[]): Refusal {
  const error = answer.error as Refusal | undefined;
  expect(error?.code, JSON.stringify(answer)).toBe(code);
  for (const w of words) expect(error?.message).toContain(w);
  return error as Refusal;
}

describe("per-window access rules, through the relay to the real statesync-sidecar", () => {
  it("a window cannot reach a topic outside its rules by any method, nor another window's channel", async () => {
    const sidecar = startSidecar();
    const hostErrors: ErrorNotification[] = [];
    const host = createSidecarHost({ link: sidecar.link, onError: (p) => hostErrors.push(p) });
    const hostClient = await within(host.connect(), "host connect");
    await hostClient.set("secret", { key: "s3cr3t" });
    await hostClient.set("a/doc", { n: 1 });

    // Window B (no rules) owns channel "shared" on the secret topic; A's rules cover a/*.
    const b = await clientWindow(host);
    const bApplied: unknown[] = [];
    const bSync = createRevisionSync({
      topic: "secret",
      channel: "shared",
      connection: b,
      applier: { apply: ({ data }) => void bApplied.push(data) },
    });
    await within(bSync.start(), "B opens shared");
    const a = rawWindow(host, { open: ["a/*"], write: ["a/notes"], invalidate: true });
    const opened = await a.call("channel.open", { channel: "mine", topic: "a/doc" });
    expect(opened.result, JSON.stringify(opened)).toMatchObject({ channel: "mine", localRevision: "1" });

    const before = sidecar.transcript.length;
    const secret = '"secret"';
    // open, get: the "open" rule.
    let e = refused(
      await a.call("channel.open", { channel: "x", topic: "secret" }),
      AccessDenied,
      '"open" rule',
      secret,
    );
    expect(e.data).toMatchObject({ rule: "open", method: "channel.open", topic: "secret" });
    refused(await a.call("state.get", { topic: "secret" }), AccessDenied, '"open" rule');
    // set, patch, delete: the "write" rule, even on a topic the window may read.
    e = refused(await a.call("state.set", { topic: "secret", data: 1 }), AccessDenied, '"write" rule');
    expect(e.data?.rule).toBe("write");
    refused(await a.call("state.set", { topic: "a/doc", data: 2 }), AccessDenied, '"write" rule', '"a/doc"');
    refused(await a.call("state.delete", { topic: "secret" }), AccessDenied, '"write" rule');
    refused(await a.call("state.delete", { topic: "a/doc" }), AccessDenied, '"write" rule');
    refused(await a.call("state.patch", { topic: "secret", patch: [] }), AccessDenied, '"write" rule');
    refused(await a.call("state.patch", { topic: "a/doc", patch: [] }), AccessDenied, '"write" rule');
    // invalidate, with and without channel, as a request: the topic's "open" rule.
    refused(await a.call("invalidate", { topic: "secret", revision: "9" }), AccessDenied, '"open" rule');
    refused(
      await a.call("invalidate", { topic: "secret", revision: "9", channel: "mine" }),
      AccessDenied,
      '"open" rule',
    );
    // Another window's channel, under a name that collides with it: refused by ownership.
    refused(
      await a.call("channel.open", { channel: "shared", topic: "a/doc" }),
      ErrorCodes.ChannelExists,
      "another window",
    );
    for (const method of ["channel.refresh", "channel.close", "channel.status"]) {
      refused(await a.call(method, { channel: "shared" }), ErrorCodes.UnknownChannel, "belongs to another window");
    }
    refused(
      await a.call("invalidate", { topic: "a/doc", revision: "9", channel: "shared" }),
      ErrorCodes.UnknownChannel,
      "belongs to another window",
    );
    // As notifications: dropped, and reported to the window and the host.
    a.notify("invalidate", { topic: "secret", revision: "10" });
    a.notify("invalidate", { topic: "secret", revision: "11", channel: "mine" });
    // channel.list answers only the window's own channels: "shared" would name the secret topic.
    const list = await a.call("channel.list", {});
    expect((list.result as { channels: { channel: string }[] }).channels.map((c) => c.channel)).toEqual(["mine"]);

    // Nothing of the refused calls reached the sidecar: only the list went through.
    const forwarded = sidecar.transcript.slice(before).filter((r) => r.from === "host");
    expect(forwarded.map((r) => r.message.method)).toEqual(["channel.list"]);
    const told = a.received.filter((m) => m.method === "error").map((m) => m.params as ErrorNotification);
    expect(told.map((p) => p.error.code)).toEqual([AccessDenied, AccessDenied]);
    for (const p of told) expect(p.error.message).toContain('"open" rule');
    expect(hostErrors).toEqual(told);

    // Within its rules the window works; B's channel and the secret are untouched.
    expect((await a.call("state.set", { topic: "a/notes", data: "hi" })).result).toMatchObject({ revision: "1" });
    expect((await a.call("state.get", { topic: "a/doc" })).result).toMatchObject({ revision: "1" });
    expect((await a.call("invalidate", { topic: "a/doc", revision: "1", channel: "mine" })).result).toEqual({
      delivered: 1,
    });
    expect(await hostClient.get("secret")).toMatchObject({ revision: "1", data: { key: "s3cr3t" } });
    expect(await b.channelStatus("shared")).toMatchObject({ state: "running", counters: { refreshes: 1 } });
    expect(bApplied).toEqual([{ key: "s3cr3t" }]);
    await sidecar.finish();
  });

  it("invalidate is refused unless the rules allow it; absent rules allow nothing", async () => {
    const sidecar = startSidecar();
    const host = createSidecarHost({ link: sidecar.link });
    const hostClient = await within(host.connect(), "host connect");
    await hostClient.set("t", 1);
    const quiet = rawWindow(host, { open: ["*"], write: ["*"] });
    const e = refused(await quiet.call("invalidate", { topic: "t", revision: "2" }), AccessDenied, '"invalidate" rule');
    expect(e.data?.rule).toBe("invalidate");
    expect((await quiet.call("state.set", { topic: "t", data: 2 })).result).toMatchObject({ revision: "2" });

    const none = rawWindow(host, {});
    refused(await none.call("state.get", { topic: "t" }), AccessDenied, '"open" rule []');
    refused(await none.call("channel.open", { channel: "n", topic: "t" }), AccessDenied, '"open" rule');
    refused(await none.call("state.set", { topic: "t", data: 3 }), AccessDenied, '"write" rule');
    expect(await hostClient.get("t")).toMatchObject({ revision: "2" });
    await sidecar.finish();
  });
});
