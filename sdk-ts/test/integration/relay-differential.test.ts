import { afterEach, describe, expect, it } from "vitest";
import type { JsonRpcMessage, Link } from "../../src/link.js";
import { createSidecarHost, type SidecarHost } from "../../src/relay.js";
import { readWindowMessage, type WindowReading } from "../../src/window-message.js";
import { within } from "../helpers/async.js";
import { disposeAll, type RunningSidecar, startSidecar } from "./harness.js";

afterEach(disposeAll);

// A differential test of the one-reading rule (issue 19): generated message texts are
// read by the relay's parser (readWindowMessage) and by the real sidecar, and the two must
// agree on method, id and name (channel or topic) for every message the relay accepts,
// both when the relay forwards its own re-serialisation and when the sidecar reads the
// very same bytes itself.

type Message = Record<string, unknown>;

/** The methods under test, and which member names the channel or topic. */
const methods = [
  { method: "channel.open", member: "channel", extra: ',"topic":"t"' },
  { method: "channel.status", member: "channel", extra: "" },
  { method: "channel.close", member: "channel", extra: "" },
  { method: "state.get", member: "topic", extra: "" },
  { method: "invalidate", member: "channel", extra: ',"topic":"t","revision":"0"' },
] as const;

/** How the name is spelt as a JSON string: reading is what JSON.parse makes of it. */
const values: { label: string; text: (base: string) => string }[] = [
  { label: "plain", text: (base) => `"${base}"` },
  { label: "escaped", text: (base) => `"${base.slice(0, -1)}\\u00${base.charCodeAt(base.length - 1).toString(16)}"` },
  { label: "lone high surrogate", text: (base) => `"${base}\\ud800"` },
  { label: "lone low surrogate", text: (base) => `"${base}\\udc00"` },
  { label: "surrogate pair", text: (base) => `"${base}\\ud83d\\ude00"` },
  { label: "U+FFFD", text: (base) => `"${base}\\ufffd"` },
];

const capital = (name: string) => name[0]?.toUpperCase() + name.slice(1);
const escapeFirst = (name: string) => `\\u00${name.charCodeAt(0).toString(16)}${name.slice(1)}`;

/** How the name's member is spelt; decoy is another name, placed where a reader might take it. */
const keys: { label: string; members: (member: string, value: string, decoy: string) => string }[] = [
  { label: "exact", members: (m, v) => `"${m}":${v}` },
  { label: "escaped name", members: (m, v) => `"${escapeFirst(m)}":${v}` },
  { label: "capitalised", members: (m, v) => `"${capital(m)}":${v}` },
  { label: "upper case", members: (m, v) => `"${m.toUpperCase()}":${v}` },
  { label: "duplicate", members: (m, v, d) => `"${m}":${d},"${m}":${v}` },
  { label: "duplicate, escaped", members: (m, v, d) => `"${m}":${d},"${escapeFirst(m)}":${v}` },
  { label: "case twin", members: (m, v, d) => `"${m}":${d},"${capital(m)}":${v}` },
  { label: "unknown member beside", members: (m, v) => `"${m}":${v},"zzz":1` },
];

/**
 * Variants of the envelope, around params built with the exact member. id is the id
 * member with its comma ("" in a notification); caseId the case's id, for variants that
 * spell the id member differently.
 */
const envelopes: {
  label: string;
  requestsOnly?: true;
  text: (id: string, method: string, params: string, caseId: string) => string;
}[] = [
  { label: "exact", text: (id, method, params) => `{"jsonrpc":"2.0",${id}"method":"${method}","params":${params}}` },
  {
    label: "escaped method name",
    text: (id, method, params) => `{"jsonrpc":"2.0",${id}"\\u006dethod":"${method}","params":${params}}`,
  },
  {
    label: "Method twin",
    text: (id, method, params) =>
      `{"jsonrpc":"2.0",${id}"method":"channel.list","Method":"${method}","params":${params}}`,
  },
  {
    label: "method twice",
    text: (id, method, params) =>
      `{"jsonrpc":"2.0",${id}"method":"channel.list","method":"${method}","params":${params}}`,
  },
  // Go's encoding/json folds U+017F (long s) to "s": "paramſ" is "params" to it.
  {
    label: "long-s params",
    text: (id, method, params) => `{"jsonrpc":"2.0",${id}"method":"${method}","param\u017f":${params}}`,
  },
  {
    label: "long-s jsonrpc",
    text: (id, method, params) => `{"j\u017fonrpc":"2.0",${id}"method":"${method}","params":${params}}`,
  },
  {
    label: "escaped id name",
    requestsOnly: true,
    text: (id, method, params) =>
      `{"jsonrpc":"2.0",${id.replace('"id"', '"\\u0069d"')}"method":"${method}","params":${params}}`,
  },
  // In a notification, "ID" alone: a reader that folds case takes it for a request.
  {
    label: "ID twin",
    text: (id, method, params, caseId) =>
      `{"jsonrpc":"2.0",${id}"ID":"${caseId}-as-ID","method":"${method}","params":${params}}`,
  },
];

interface Case {
  label: string;
  text: string;
  /** The name's base; every name a case can produce starts with it, so cases never meet. */
  base: string;
  method: string;
  member: string;
  notification: boolean;
  id: string | undefined;
}

function generate(): Case[] {
  const cases: Case[] = [];
  let n = 0;
  const add = (
    label: string,
    method: (typeof methods)[number],
    notification: boolean,
    build: (id: string, base: string, caseId: string) => string,
  ) => {
    n++;
    const base = `k${n}-`;
    const id = notification ? undefined : `case-${n}`;
    const text = build(id === undefined ? "" : `"id":"${id}",`, base, `case-${n}`);
    cases.push({ label, text, base, method: method.method, member: method.member, notification, id });
  };
  for (const m of methods) {
    for (const notification of [false, true]) {
      const kind = notification ? "notification" : "request";
      for (const value of values) {
        for (const key of keys) {
          add(`${m.method} ${kind}, ${value.label} name, ${key.label}`, m, notification, (id, base, caseId) => {
            const params = `{${key.members(m.member, value.text(`${base}n`), `"${base}decoy"`)}${m.extra}}`;
            return envelopes[0]?.text(id, m.method, params, caseId) ?? "";
          });
        }
      }
      for (const envelope of envelopes.slice(1)) {
        if (notification && envelope.requestsOnly) continue;
        add(`${m.method} ${kind}, ${envelope.label}`, m, notification, (id, base, caseId) =>
          envelope.text(id, m.method, `{"${m.member}":"${base}n"${m.extra}}`, caseId),
        );
      }
    }
  }
  return cases;
}

/** What a reader made of a case: the method, id and name it acted on. */
interface Agreed {
  method: string;
  id: string | undefined;
  name: string;
}

function relayReading(c: Case, reading: WindowReading): Agreed | undefined {
  if (reading.kind !== "request" && reading.kind !== "notification") {
    return undefined;
  }
  const name = reading.params?.[c.member];
  expect(typeof name, `${c.label}: the relay accepted it without a name`).toBe("string");
  return {
    method: reading.method,
    id: reading.kind === "request" ? String(reading.id) : undefined,
    name: name as string,
  };
}

/** A window link that hands the relay each message as its JSON text, as a byte stream would. */
function textWindow(host: SidecarHost) {
  let deliver: (text: unknown) => void = () => {};
  const received: Message[] = [];
  const waiting = new Map<unknown, (answer: Message) => void>();
  const link: Link = {
    send(message: JsonRpcMessage) {
      const copy = JSON.parse(JSON.stringify(message)) as Message;
      received.push(copy);
      const answer = copy.method === undefined ? waiting.get(copy.id) : undefined;
      if (answer !== undefined) {
        waiting.delete(copy.id);
        answer(copy);
      }
    },
    onMessage(handler) {
      deliver = handler;
      return () => {};
    },
    onClose() {
      return () => {};
    },
    close() {},
  };
  host.attachWindow(link);
  return {
    received,
    send: (text: string) => deliver(text),
    call(text: string, id: string): Promise<Message> {
      const answered = new Promise<Message>((resolve) => waiting.set(id, resolve));
      deliver(text);
      return within(answered, `the relay's answer to ${text}`);
    },
  };
}

/** The sidecar read directly: raw lines to its stdin, answers matched by id. */
function direct(sidecar: RunningSidecar) {
  const waiting = new Map<unknown, (answer: Message) => void>();
  const answers: Message[] = [];
  sidecar.link.onMessage((value) => {
    const message = value as Message;
    if (message.method !== undefined) return;
    answers.push(message);
    const answer = waiting.get(message.id);
    if (answer !== undefined) {
      waiting.delete(message.id);
      answer(message);
    }
  });
  let barriers = 0;
  const call = (text: string, id: string): Promise<Message> => {
    const answered = new Promise<Message>((resolve) => waiting.set(id, resolve));
    sidecar.node.process.stdin?.write(`${text}\n`);
    return within(answered, `the sidecar's answer to ${text}`);
  };
  return {
    call,
    /** Every answer the sidecar wrote, in order. */
    answers,
    send: (text: string) => sidecar.node.process.stdin?.write(`${text}\n`),
    channels: async (): Promise<string[]> => {
      const id = `list-${++barriers}`;
      const answer = await call(`{"jsonrpc":"2.0","id":"${id}","method":"channel.list","params":{}}`, id);
      return ((answer.result as { channels: { channel: string }[] }).channels ?? []).map((c) => c.channel);
    },
  };
}

/** What an answer says of the name it acted on, per method. */
function answeredName(method: string, answer: Message): string | number | undefined {
  const result = answer.result as Record<string, unknown> | undefined;
  if (result === undefined) return undefined;
  if (method === "state.get") return result.topic as string;
  if (method === "invalidate") return result.delivered as number;
  return result.channel as string;
}

const cases = generate();
const readings = cases.map((c) => ({ c, reading: readWindowMessage(c.text) }));
const accepted = readings.filter(({ reading }) => reading.kind === "request" || reading.kind === "notification");
const refused = readings.filter(({ reading }) => reading.kind === "refused");

describe("differential: the relay's reading and the sidecar's reading of generated messages", () => {
  it("the generator covers accepted and refused messages of every kind", () => {
    expect(cases.length).toBeGreaterThan(500);
    // What the relay must refuse: every case variant, duplicate, lone surrogate, and
    // request-only method without an id. What it must accept: everything else.
    for (const { c, reading } of readings) {
      const mustRefuse =
        /capitalised|upper case|duplicate|twin|twice|long-s|lone/.test(c.label) ||
        (c.notification && c.method !== "invalidate") ||
        (c.method === "channel.open" && c.label.includes("unknown member"));
      expect(reading.kind === "refused", `${c.label}: ${c.text} → ${JSON.stringify(reading)}`).toBe(mustRefuse);
      if (reading.kind === "refused") {
        expect(reading.message.length, c.label).toBeLessThan(400);
        expect(reading.notification).toBe(c.notification);
      }
    }
    expect(accepted.length).toBeGreaterThan(50);
    expect(refused.length).toBeGreaterThan(400);
  });

  it("through the relay: the sidecar acts on exactly the relay's reading of each accepted message, and sees nothing of a refused one", async () => {
    const sidecar = startSidecar();
    const host = createSidecarHost({ link: sidecar.link, onError: () => {} });
    await within(host.ready, "initialize");
    const window = textWindow(host);
    let opens = 0;
    const open = async (channel: string) => {
      const id = `open-${++opens}`;
      const answer = await window.call(
        JSON.stringify({ jsonrpc: "2.0", id, method: "channel.open", params: { channel, topic: "t" } }),
        id,
      );
      expect(answer.result, JSON.stringify(answer)).toMatchObject({ channel });
    };
    for (const { c, reading } of readings) {
      const read = relayReading(c, reading);
      // The channel the relay read is open beforehand, for the methods that need one.
      if (read !== undefined && c.method !== "channel.open" && c.member === "channel") await open(read.name);
      const before = sidecar.transcript.length;
      if (c.id === undefined) {
        window.send(c.text);
      } else {
        const answer = await window.call(c.text, c.id);
        if (read === undefined) {
          expect(answer.error, `${c.label}: ${JSON.stringify(answer)}`).toBeDefined();
        } else {
          const name = answeredName(c.method, answer);
          expect(name, `${c.label}: ${c.text} → ${JSON.stringify(answer)}`).toBe(
            c.method === "invalidate" ? 1 : read.name,
          );
        }
      }
      const forwarded = sidecar.transcript
        .slice(before)
        .filter((r) => r.from === "host")
        .map((r) => r.message);
      if (read === undefined) {
        expect(forwarded, `${c.label}: ${c.text}`).toEqual([]);
        continue;
      }
      expect(forwarded.length, c.label).toBe(1);
      const sent = forwarded[0] as Message;
      expect(sent.method, c.label).toBe(read.method);
      expect((sent.params as Message)[c.member], c.label).toBe(read.name);
      expect("id" in sent, c.label).toBe(read.id !== undefined);
      if (c.method === "channel.open") {
        const id = `list-${c.base}`;
        const list = await window.call(`{"jsonrpc":"2.0","id":"${id}","method":"channel.list","params":{}}`, id);
        const names = (list.result as { channels: { channel: string }[] }).channels.map((ch) => ch.channel);
        expect(names, c.label).toContain(read.name);
      }
    }
    host.close();
    await sidecar.finish();
  });

  it("read directly: the sidecar reads the very bytes of each message the relay accepts as the relay did", async () => {
    const sidecar = startSidecar();
    const s = direct(sidecar);
    for (const { c, reading } of accepted) {
      const read = relayReading(c, reading) as Agreed;
      if (c.method !== "channel.open" && c.member === "channel") {
        const id = `open-${c.base}`;
        const answer = await s.call(
          JSON.stringify({ jsonrpc: "2.0", id, method: "channel.open", params: { channel: read.name, topic: "t" } }),
          id,
        );
        expect(answer.result, JSON.stringify(answer)).toMatchObject({ channel: read.name });
      }
      if (read.id === undefined) {
        // Only invalidate is accepted without an id; it leaves no trace to compare but
        // must not be refused by the sidecar either (no error notification for it).
        s.send(c.text);
        continue;
      }
      const answer = await s.call(c.text, read.id);
      expect(answer.id, c.label).toBe(read.id);
      expect(answeredName(c.method, answer), `${c.label}: ${c.text} → ${JSON.stringify(answer)}`).toBe(
        c.method === "invalidate" ? 1 : read.name,
      );
      if (c.method === "channel.open") expect(await s.channels(), c.label).toContain(read.name);
      if (c.method === "channel.close") expect(await s.channels(), c.label).not.toContain(read.name);
    }
    const errors = sidecar.transcript.filter((r) => r.from === "sidecar" && r.message.method === "error");
    expect(errors.map((r) => r.message.params)).toEqual([]);
    await sidecar.finish();
  });

  // The Go side of issue 19: the sidecar refuses case variants, duplicates, lone
  // surrogates and request-only notifications itself, so a message that reaches it
  // without the relay is refused too.
  it("read directly: the sidecar refuses every message the relay refuses, and acts on none of them", async () => {
    const sidecar = startSidecar();
    const s = direct(sidecar);
    const failures: string[] = [];
    for (const { c } of refused) {
      // Every name a reader could take from the case, as the sidecar would store it.
      const names = [`${c.base}decoy`, `${c.base}n`, `${c.base}n\ufffd`, `${c.base}n\u{1f600}`];
      const preOpened = c.member === "channel" && c.method !== "channel.open" ? names : [];
      for (const [i, channel] of preOpened.entries()) {
        const id = `open-${c.base}${i}`;
        await s.call(
          JSON.stringify({ jsonrpc: "2.0", id, method: "channel.open", params: { channel, topic: "t" } }),
          id,
        );
      }
      // The channel.list below is the barrier: a refusal on reading is answered before it.
      const before = s.answers.length;
      s.send(c.text);
      const open = (await s.channels()).filter((name) => name.startsWith(c.base));
      const answers = s.answers.slice(before, -1);
      const refusedAsItShould =
        c.id === undefined
          ? answers.every((answer) => !("result" in answer))
          : answers.length === 1 &&
            (answers[0]?.id === c.id || answers[0]?.id === null) &&
            [-32600, -32601, -32602].includes((answers[0]?.error as { code?: number } | undefined)?.code ?? 0);
      if (!refusedAsItShould) {
        failures.push(`${c.label}: ${c.text} → ${JSON.stringify(answers)}`);
      }
      if (JSON.stringify(open.sort()) !== JSON.stringify([...preOpened].sort())) {
        failures.push(`${c.label}: ${c.text} left channels ${JSON.stringify(open)}, want ${JSON.stringify(preOpened)}`);
      }
    }
    expect(failures, `${failures.length} disagreements, the first 20:\n${failures.slice(0, 20).join("\n")}`).toEqual(
      [],
    );
    await sidecar.finish();
  });
});
