import { ErrorCodes } from "./errors.js";
import type { JsonRpcErrorObject, RequestId } from "./link.js";

/**
 * The relay's one reading of a message from a window. The relay checks this reading and
 * forwards only what it holds, re-serialised, never the window's own bytes or object: a
 * member the relay did not read cannot reach the sidecar, so the relay's checks and the
 * sidecar's execution always see the same message.
 */
export type WindowReading =
  | { kind: "request"; id: RequestId; method: string; params?: Record<string, unknown> }
  | { kind: "notification"; method: string; params?: Record<string, unknown> }
  | { kind: "response"; id: RequestId; outcome: { result: unknown } | { error: JsonRpcErrorObject } }
  | WindowRefusal;

/** A message the relay will not forward, and why (the message names the member and the rule). */
export interface WindowRefusal {
  kind: "refused";
  /** The id to answer with, when the message was a request whose id could be read. */
  id: RequestId | null;
  /** True when the message had no id: it cannot be answered, only reported. */
  notification: boolean;
  /**
   * True when the message was an answer (it names no method): the window is not answered
   * (an error with that id would be taken for the answer to its own request); the call
   * it answered is.
   */
  answer: boolean;
  code: number;
  message: string;
  /** The method as read, when it was. */
  method?: string;
}

/** A member's rule: the JSON type the relay reads it as, or a nested object. */
type Rule = "string" | "number" | "boolean" | "strings" | "any" | ObjectRule;

interface ObjectRule {
  members: Record<string, Rule>;
  required?: readonly string[];
  /**
   * Closed objects refuse unknown members, as the sidecar does (a misspelt option must not
   * be dropped silently). Open ones drop them: the sidecar would ignore them anyway.
   */
  closed: boolean;
}

const retry: ObjectRule = {
  members: {
    maxAttempts: "number",
    initialDelayMs: "number",
    multiplier: "number",
    maxDelayMs: "number",
    jitter: "number",
  },
  closed: true,
};

const throttling: ObjectRule = {
  members: {
    debounceMs: "number",
    maxWaitMs: "number",
    throttleMs: "number",
    leading: "boolean",
    trailing: "boolean",
  },
  closed: true,
};

const channelOptions: ObjectRule = {
  members: {
    callTimeoutMs: "number",
    resyncIntervalMs: "number",
    retry,
    throttling,
    deltas: "boolean",
    paths: "strings",
  },
  closed: true,
};

const channelOnly: ObjectRule = { members: { channel: "string" }, required: ["channel"], closed: false };

interface MethodRule {
  params: ObjectRule;
  /** Only invalidate may come without an id: the relay cannot answer a notification. */
  notification?: true;
  /** Params may be left out (channel.list {}). */
  paramsOptional?: true;
}

/** What a window may send, per schema/protocol.schema.json and docs/protocol.md. */
const methods: Record<string, MethodRule> = {
  initialize: {
    params: { members: { protocolVersion: "string", client: "any" }, closed: false },
    paramsOptional: true,
  },
  "channel.open": {
    params: {
      members: { channel: "string", topic: "string", source: "string", options: channelOptions },
      required: ["channel", "topic"],
      closed: true,
    },
  },
  "channel.close": { params: channelOnly },
  "channel.refresh": { params: channelOnly },
  "channel.status": { params: channelOnly },
  "channel.list": { params: { members: {}, closed: false }, paramsOptional: true },
  invalidate: {
    params: {
      members: {
        topic: "string",
        revision: "string",
        epoch: "string",
        sourceId: "string",
        timestampMs: "number",
        channel: "string",
      },
      required: ["topic", "revision"],
      closed: false, // events may carry members of their own (the seed ignores them)
    },
    notification: true,
  },
  "state.set": {
    params: {
      members: { topic: "string", data: "any", expectedRevision: "string", sourceId: "string" },
      required: ["topic", "data"],
      closed: true,
    },
  },
  "state.patch": {
    params: {
      members: { topic: "string", patch: "any", expectedRevision: "string", sourceId: "string" },
      required: ["topic", "patch"],
      closed: true,
    },
  },
  "state.delete": {
    params: {
      members: { topic: "string", expectedRevision: "string", sourceId: "string" },
      required: ["topic"],
      closed: true,
    },
  },
  "state.get": { params: { members: { topic: "string" }, required: ["topic"], closed: false } },
  shutdown: { params: { members: {}, closed: false }, paramsOptional: true },
};

/** The sidecar's calls to the host: a window answers them, it never sends them. */
const sidecarMethods = new Set(["getSnapshot", "apply", "error"]);

const envelopeMembers = ["jsonrpc", "id", "method", "params", "result", "error"];
const errorObject: ObjectRule = {
  members: { code: "number", message: "string", data: "any" },
  required: ["code", "message"],
  closed: true,
};
/** A window's answer to getSnapshot {channel}: read as the sidecar reads it. */
const snapshotResult: ObjectRule = {
  members: { revision: "string", data: "any", epoch: "string" },
  required: ["revision", "data"],
  closed: false,
};

class Refused extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads one message from a window, as a JSON value or as its JSON text. Text is read
 * here, so that a member named twice can be seen (JSON.parse keeps the last copy and says
 * nothing): such a message is refused. A value cannot hold a member twice, and the relay
 * forwards only what it read of it.
 */
export function readWindowMessage(input: unknown): WindowReading {
  let value = input;
  if (typeof input === "string") {
    try {
      value = JSON.parse(input);
    } catch (error) {
      return refusal(null, false, ErrorCodes.ParseError, `the message is not JSON (${String(error)})`);
    }
    const duplicate = firstDuplicateMember(input);
    if (duplicate !== undefined) {
      return refusal(
        isPlainObject(value) ? idOf(value.id) : null,
        isPlainObject(value) && value.id === undefined,
        ErrorCodes.InvalidRequest,
        `member ${quote(duplicate)} appears twice: a reader keeps one copy and the relay cannot tell which the sidecar would keep; send each member once`,
      );
    }
  }
  if (!isPlainObject(value)) {
    return refusal(
      null,
      false,
      ErrorCodes.InvalidRequest,
      "the message is not a JSON object: send one JSON-RPC 2.0 message",
    );
  }
  const id = idOf(value.id);
  const notification = value.id === undefined;
  const method = typeof value.method === "string" ? value.method : undefined;
  const answer = !notification && !Object.keys(value).some((name) => foldName(name) === "method");
  try {
    checkMembers(value, envelopeMembers, "", true);
    if (value.jsonrpc !== "2.0") {
      throw new Refused(ErrorCodes.InvalidRequest, `"jsonrpc" is ${quote(value.jsonrpc)}: it must be "2.0"`);
    }
    if (!notification && id === null) {
      throw new Refused(ErrorCodes.InvalidRequest, `"id" is ${quote(value.id)}: use a number or a string`);
    }
    if ("method" in value) {
      return readCall(value, id, notification);
    }
    if (id === null) {
      throw new Refused(
        ErrorCodes.InvalidRequest,
        'the message has neither "method" nor "id": it is no JSON-RPC 2.0 message',
      );
    }
    return { kind: "response", id, outcome: readOutcome(value) };
  } catch (error) {
    if (error instanceof Refused) {
      return refusal(notification ? null : id, notification, error.code, error.message, method, answer);
    }
    throw error;
  }
}

/**
 * Reads a window's answer to the sidecar's getSnapshot {channel} by the same rules, so
 * that the sidecar reads the revision, data and epoch the relay read.
 */
export function readSnapshotAnswer(
  result: unknown,
): { ok: true; result: Record<string, unknown> } | { ok: false; code: number; message: string } {
  try {
    return { ok: true, result: readObject(result, snapshotResult, "result", ErrorCodes.InvalidParams) };
  } catch (error) {
    if (error instanceof Refused) {
      return { ok: false, code: error.code, message: error.message };
    }
    throw error;
  }
}

function readCall(value: Record<string, unknown>, id: RequestId | null, notification: boolean): WindowReading {
  if ("result" in value || "error" in value) {
    throw new Refused(
      ErrorCodes.InvalidRequest,
      'the message has "method" and also "result" or "error": send one or the other',
    );
  }
  const method = readString(value.method, "method", ErrorCodes.InvalidRequest);
  if (sidecarMethods.has(method)) {
    throw new Refused(
      ErrorCodes.MethodNotFound,
      `method ${quote(method)} is one the sidecar sends to the host, never one a window sends`,
    );
  }
  const rule = methods[method];
  if (rule === undefined) {
    throw new Refused(ErrorCodes.MethodNotFound, `method ${quote(method)} is not a method of protocol v1`);
  }
  if (notification && rule.notification !== true) {
    throw new Refused(
      ErrorCodes.InvalidRequest,
      `${method} was sent as a notification (no "id"): it is a request, and the relay cannot answer a notification, so it dropped it; send it with an "id"`,
    );
  }
  let params: Record<string, unknown> | undefined;
  if (value.params === undefined) {
    if (rule.paramsOptional !== true) {
      throw new Refused(ErrorCodes.InvalidParams, `${method}: "params" is missing: send an object`);
    }
  } else {
    params = readObject(value.params, rule.params, "params", ErrorCodes.InvalidParams);
  }
  if (notification) {
    return params === undefined ? { kind: "notification", method } : { kind: "notification", method, params };
  }
  const requestId = id as RequestId;
  return params === undefined
    ? { kind: "request", id: requestId, method }
    : { kind: "request", id: requestId, method, params };
}

function readOutcome(value: Record<string, unknown>): { result: unknown } | { error: JsonRpcErrorObject } {
  const hasResult = "result" in value;
  const hasError = "error" in value;
  if (hasResult === hasError) {
    throw new Refused(ErrorCodes.InvalidRequest, 'an answer carries exactly one of "result" and "error"');
  }
  if (hasResult) {
    return { result: value.result };
  }
  const error = readObject(value.error, errorObject, "error", ErrorCodes.InvalidRequest);
  if (!Number.isInteger(error.code)) {
    throw new Refused(ErrorCodes.InvalidRequest, `"error.code" is ${quote(error.code)}: use an integer`);
  }
  return { error: error as unknown as JsonRpcErrorObject };
}

/**
 * Reads an object by its rule into a new object holding only the members the rule names,
 * each read once. Refuses a member that differs from a known one only in case (the
 * sidecar's decoder would take it for the known one), a string that is not well-formed
 * UTF-16 (the sidecar would read U+FFFD in place of a lone surrogate, so two names the
 * relay tells apart would be one name there), and a number that JSON cannot carry.
 */
function readObject(value: unknown, rule: ObjectRule, path: string, code: number): Record<string, unknown> {
  if (!isPlainObject(value)) {
    throw new Refused(code, `${quote(path)} is ${describe(value)}: send an object`);
  }
  checkMembers(value, Object.keys(rule.members), path, rule.closed, code);
  for (const name of rule.required ?? []) {
    if (!Object.hasOwn(value, name) || value[name] === undefined) {
      throw new Refused(code, `${quote(`${path}.${name}`)} is missing`);
    }
  }
  const read: Record<string, unknown> = {};
  for (const [name, memberRule] of Object.entries(rule.members)) {
    if (!Object.hasOwn(value, name) || value[name] === undefined) {
      continue;
    }
    const member = value[name];
    const memberPath = `${path}.${name}`;
    if (memberRule === "any") {
      read[name] = member;
    } else if (memberRule === "string") {
      read[name] = readString(member, memberPath, code);
    } else if (memberRule === "number") {
      if (typeof member !== "number" || !Number.isFinite(member)) {
        throw new Refused(code, `${quote(memberPath)} is ${describe(member)}: send a finite number`);
      }
      read[name] = member;
    } else if (memberRule === "strings") {
      if (!Array.isArray(member)) {
        throw new Refused(code, `${quote(memberPath)} is ${describe(member)}: send an array of strings`);
      }
      read[name] = member.map((item: unknown, i) => readString(item, `${memberPath}[${i}]`, code));
    } else if (memberRule === "boolean") {
      if (typeof member !== "boolean") {
        throw new Refused(code, `${quote(memberPath)} is ${describe(member)}: send true or false`);
      }
      read[name] = member;
    } else {
      read[name] = readObject(member, memberRule, memberPath, code);
    }
  }
  return read;
}

function readString(value: unknown, path: string, code: number): string {
  if (typeof value !== "string") {
    throw new Refused(code, `${quote(path)} is ${describe(value)}: send a string`);
  }
  const lone = loneSurrogateAt(value);
  if (lone !== -1) {
    throw new Refused(
      code,
      `${quote(path)} holds a lone surrogate (\\u${value.charCodeAt(lone).toString(16)} at index ${lone}) in ${quote(value)}: it is not Unicode text, and the sidecar would read it as U+FFFD, the same as other such names; send well-formed text`,
    );
  }
  return value;
}

/**
 * Refuses members the relay would not forward faithfully: one that differs only in case
 * from a known name (compared as Go's encoding/json folds names, which also matches
 * U+017F to "s" and U+212A to "k"), and, in a closed object, any unknown one.
 */
function checkMembers(
  value: Record<string, unknown>,
  known: readonly string[],
  path: string,
  closed: boolean,
  code: number = ErrorCodes.InvalidRequest,
): void {
  for (const name of Object.keys(value)) {
    if (known.includes(name)) {
      continue;
    }
    const memberPath = path === "" ? name : `${path}.${name}`;
    const folded = foldName(name);
    const twin = known.find((candidate) => foldName(candidate) === folded);
    if (twin !== undefined) {
      throw new Refused(
        code,
        `member ${quote(memberPath)} differs only in case from ${quote(twin)}: the sidecar would read it as ${quote(twin)}; spell it exactly ${quote(twin)}, once`,
      );
    }
    if (closed) {
      throw new Refused(
        code,
        `member ${quote(memberPath)} is unknown here (known: ${known.join(", ")}): the relay forwards only what it checked`,
      );
    }
  }
}

/** A name as Go's encoding/json compares it to a field's: case-folded, ſ as s, K (Kelvin) as k. */
function foldName(name: string): string {
  return name.toLowerCase().replaceAll("\u017f", "s").replaceAll("\u212a", "k");
}

/** The index of the first UTF-16 code unit that is a surrogate without its pair, or -1. */
export function loneSurrogateAt(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return i;
    }
    if (unit >= 0xdc00 && unit <= 0xdfff) {
      return i;
    }
  }
  return -1;
}

/**
 * The path of the first member named twice in one object of a JSON text (names compared
 * after their escapes are decoded: "channel" and "\u0063hannel" are the same name), or
 * undefined. The text must already have parsed: the scan does not check the grammar.
 */
export function firstDuplicateMember(text: string): string | undefined {
  // One frame per open object or array: the names seen so far (null in an array) and
  // the name whose value is being read, for the path in the message.
  const frames: { names: Set<string> | null; current: string }[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0x22) {
      // The closing quote is the next one not escaped by an odd run of backslashes.
      let end = text.indexOf('"', i + 1);
      while (end !== -1 && backslashesBefore(text, end) % 2 === 1) {
        end = text.indexOf('"', end + 1);
      }
      if (end === -1) {
        return undefined; // not reached: the text parsed
      }
      const frame = frames[frames.length - 1];
      if (expectName && frame?.names) {
        const raw = text.slice(i + 1, end);
        const name = raw.includes("\\") ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (frame.names.has(name)) {
          return [...frames.slice(0, -1).map((f) => f.current), name].join(".");
        }
        frame.names.add(name);
        frame.current = name;
        expectName = false;
      }
      i = end;
      continue;
    }
    if (unit === 0x7b) {
      frames.push({ names: new Set(), current: "" });
      expectName = true;
    } else if (unit === 0x5b) {
      frames.push({ names: null, current: "[]" });
      expectName = false;
    } else if (unit === 0x7d || unit === 0x5d) {
      frames.pop();
      expectName = false;
    } else if (unit === 0x2c) {
      expectName = frames[frames.length - 1]?.names != null;
    }
  }
  return undefined;
}

function backslashesBefore(text: string, index: number): number {
  let count = 0;
  while (text.charCodeAt(index - 1 - count) === 0x5c) {
    count++;
  }
  return count;
}

function refusal(
  id: RequestId | null,
  notification: boolean,
  code: number,
  message: string,
  method?: string,
  answer = false,
): WindowRefusal {
  return { kind: "refused", id, notification, answer, code, message, ...(method === undefined ? {} : { method }) };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return false;
  }
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function idOf(id: unknown): RequestId | null {
  return typeof id === "string" || (typeof id === "number" && Number.isFinite(id)) ? id : null;
}

function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "number") return `number ${String(value)}`; // JSON would write Infinity as null
  return `${typeof value} ${quote(value)}`;
}

/** A bounded echo of what a window sent: errors quote at most 64 characters of it. */
function quote(value: unknown): string {
  let text: string;
  try {
    text = typeof value === "string" ? value : String(JSON.stringify(value));
  } catch {
    text = String(value);
  }
  const bounded = text.length > 64 ? `${text.slice(0, 64)}… (${text.length} characters)` : text;
  return JSON.stringify(bounded);
}
