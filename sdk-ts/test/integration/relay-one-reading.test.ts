import { MessageChannel } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { connect, type StateSyncClient } from "../../src/client.js";
import { ErrorCodes } from "../../src/errors.js";
import type { JsonRpcMessage } from "../../src/link.js";
import { createMessagePortLink } from "../../src/links/message-port.js";
import type { ErrorNotification } from "../../src/protocol.js";
import { createSidecarHost, type SidecarHost } from "../../src/relay.js";
import { within } from "../helpers/async.js";
import { disposeAll, type RunningSidecar, startSidecar } from "./harness.js";

afterEach(disposeAll);

type Message = Record<string, unknown>;

/** A well-behaved window (Electron-like: its own client over a MessagePort). */
async function clientWindow(host: SidecarHost): Promise<StateSyncClient> {
  const { port1, port2 } = new MessageChannel();
  host.attachWindow(createMessagePortLink(port2));
  return within(connect(createMessagePortLink(port1)), "window connect");
}

/** A window that writes whatever it likes on its port: the red team's window. */
function rawWindow(host: SidecarHost) {
  const { port1, port2 } = new MessageChannel();
  host.attachWindow(createMessagePortLink(port2));
  const link = createMessagePortLink(port1);
  const received: Message[] = [];
  const waiting = new Map<unknown, (answer: Message) => void>();
  link.onMessage((value) => {
    const message = value as Message;
    received.push(message);
    const answer = message.method === undefined ? waiting.get(message.id) : undefined;
    if (answer !== undefined) {
      waiting.delete(message.id);
      answer(message);
    }
  });
  let barriers = 0;
  const call = (message: Message): Promise<Message> => {
    const answered = new Promise<Message>((resolve) => waiting.set(message.id, resolve));
    link.send(message as unknown as JsonRpcMessage);
    return within(answered, `the answer to ${JSON.stringify(message)}`);
  };
  return {
    received,
    call,
    send: (message: Message) => link.send(message as unknown as JsonRpcMessage),
    /**
     * A request answered through the relay: a port delivers in order, so once it is
     * answered the relay has handled everything this window sent before it.
     */
    barrier: () => call({ jsonrpc: "2.0", id: `barrier-${++barriers}`, method: "channel.list", params: {} }),
  };
}

interface Attempt {
  message: Message;
  /** The code the window is answered with (a request) or told of in an error notification. */
  code: number;
  /** Words the refusal must contain: the member and the rule. */
  says: string[];
}

interface Row {
  name: string;
  /** The other window's channel, which must stay open. */
  victim: string;
  /** A channel the attacking window opens first, as its own. */
  own?: string;
  attempts: Attempt[];
}

// The table of issue 19, each row from window A against window B's channel, through the
// relay to the real sidecar.
const rows: Row[] = [
  {
    name: "channel.close {channel: own, Channel: other's}",
    victim: "b-chan",
    own: "a-chan",
    attempts: [
      {
        message: {
          jsonrpc: "2.0",
          id: 10,
          method: "channel.close",
          params: { channel: "a-chan", Channel: "b-chan" },
        },
        code: ErrorCodes.InvalidParams,
        says: ['"params.Channel"', 'differs only in case from "channel"'],
      },
    ],
  },
  {
    name: "channel.close sent as a notification",
    victim: "b-chan",
    attempts: [
      {
        message: { jsonrpc: "2.0", method: "channel.close", params: { channel: "b-chan" } },
        code: ErrorCodes.InvalidRequest,
        says: ["channel.close was sent as a notification", 'send it with an "id"'],
      },
    ],
  },
  {
    name: '{method: "state.get", Method: "shutdown"}',
    victim: "b-chan",
    attempts: [
      {
        message: { jsonrpc: "2.0", id: 11, method: "state.get", Method: "shutdown", params: { topic: "t" } },
        code: ErrorCodes.InvalidRequest,
        says: ['"Method"', 'differs only in case from "method"'],
      },
    ],
  },
  {
    name: "shutdown sent as a notification",
    victim: "b-chan",
    attempts: [
      {
        message: { jsonrpc: "2.0", method: "shutdown" },
        code: ErrorCodes.InvalidRequest,
        says: ["shutdown was sent as a notification"],
      },
    ],
  },
  {
    // Go reads a lone surrogate escape as U+FFFD: "c\ud800", "c\udbff" and "c\ufffd"
    // are three names to JavaScript and one to the sidecar.
    name: "open c\\ud800, close c\\udbff (lone surrogates) while the other window owns c\\ufffd",
    victim: "c\ufffd",
    attempts: [
      {
        message: { jsonrpc: "2.0", id: 12, method: "channel.open", params: { channel: "c\ud800", topic: "t" } },
        code: ErrorCodes.InvalidParams,
        says: ['"params.channel"', "lone surrogate", "\\ud800"],
      },
      {
        message: { jsonrpc: "2.0", id: 13, method: "channel.close", params: { channel: "c\udbff" } },
        code: ErrorCodes.InvalidParams,
        says: ['"params.channel"', "lone surrogate", "\\udbff"],
      },
    ],
  },
  {
    name: "invalidate {channel: other's} as a notification",
    victim: "b-chan",
    attempts: [
      {
        message: { jsonrpc: "2.0", method: "invalidate", params: { topic: "t", revision: "5", channel: "b-chan" } },
        code: ErrorCodes.UnknownChannel,
        says: ['"b-chan" belongs to another window'],
      },
    ],
  },
];

async function attack(row: Row): Promise<void> {
  const sidecar = startSidecar();
  const hostErrors: ErrorNotification[] = [];
  const host = createSidecarHost({ link: sidecar.link, onError: (params) => hostErrors.push(params) });
  const hostClient = await within(host.connect(), "host connect");
  const b = await clientWindow(host);
  await within(b.openChannel({ channel: row.victim, topic: "t" }), `window B opens ${row.victim}`);
  const a = rawWindow(host);
  if (row.own !== undefined) {
    const opened = await a.call({
      jsonrpc: "2.0",
      id: 1,
      method: "channel.open",
      params: { channel: row.own, topic: "t" },
    });
    expect(opened.result, JSON.stringify(opened)).toMatchObject({ channel: row.own });
  }

  const before = sidecar.transcript.length;
  for (const attempt of row.attempts) {
    if (attempt.message.id === undefined) {
      a.send(attempt.message);
      continue;
    }
    const answer = await a.call(attempt.message);
    const error = answer.error as { code: number; message: string } | undefined;
    expect(error?.code, `answer to ${row.name}: ${JSON.stringify(answer)}`).toBe(attempt.code);
    for (const words of attempt.says) expect(error?.message).toContain(words);
  }
  await a.barrier();

  // The relay forwarded nothing of the attempts: the only message from the host side
  // since then is the window's own barrier.
  const forwarded = sidecar.transcript.slice(before).filter((r) => r.from === "host");
  expect(forwarded.map((r) => r.message.method)).toEqual(["channel.list"]);

  const notifications = row.attempts.filter((attempt) => attempt.message.id === undefined);
  const told = a.received.filter((m) => m.method === "error").map((m) => m.params as ErrorNotification);
  expect(told.map((p) => p.error.code)).toEqual(notifications.map((attempt) => attempt.code));
  expect(hostErrors).toEqual(told);
  for (const [i, attempt] of notifications.entries()) {
    expect(told[i]?.phase).toBe("protocol");
    for (const words of attempt.says) expect(told[i]?.error.message).toContain(words);
  }

  // The other window's channel is still open, and the sidecar still serves.
  const open = (await within(hostClient.listChannels(), "channel.list")).map((c) => c.channel);
  expect(open).toContain(row.victim);
  expect(sidecar.node.process.exitCode).toBeNull();
  expect(await b.channelStatus(row.victim)).toMatchObject({ channel: row.victim, state: "running" });
  host.close();
  await sidecar.finish();
}

describe("one reading of every window message (issue 19), through the relay to the real sidecar", () => {
  for (const row of rows) {
    it(`window A cannot reach window B's channel or the sidecar's life: ${row.name}`, () => attack(row));
  }

  it("a window's own well-formed channel names still work, escapes and non-BMP characters included", async () => {
    const sidecar: RunningSidecar = startSidecar();
    const host = createSidecarHost({ link: sidecar.link });
    const hostClient = await within(host.connect(), "host connect");
    const b = await clientWindow(host);
    const names = ["c\ufffd", "emoji \u{1f600}", "plain"];
    for (const channel of names) await b.openChannel({ channel, topic: "t" });
    expect((await hostClient.listChannels()).map((c) => c.channel).sort()).toEqual([...names].sort());
    for (const channel of names) await b.closeChannel(channel);
    expect(await hostClient.listChannels()).toEqual([]);
    host.close();
    await sidecar.finish();
  });
});
