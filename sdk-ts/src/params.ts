import { ErrorCodes, RpcError } from "./errors.js";
import { checkPatch, JsonPatchError } from "./json-patch.js";
import { isRecord } from "./link.js";
import { MAX_REVISION } from "./revision.js";

// The sidecar's checks of what a client sends, made before it leaves, so that a mistake
// throws at the call that made it, with the sidecar's own words (rpc/handlers.go,
// engine/event.go, engine/revision.go): a notification's mistake would otherwise come back
// only as an error notification, and some (a Map, a BigInt) never reach the sidecar as
// what the caller meant.

/**
 * The -32602 the sidecar answers for a bad member: message "invalid params: field: …",
 * and data {field} when the sidecar's check is the engine's (a FieldError), none when it
 * is the handler's own.
 */
function invalid(field: string, problem: string, withField = true): RpcError {
  return new RpcError(
    ErrorCodes.InvalidParams,
    `invalid params: ${field}: ${problem}`,
    withField ? { field } : undefined,
  );
}

/** Go's %q of at most 64 bytes, as the sidecar quotes a value back. */
function quotePrefix(value: string): string {
  return value.length <= 64 ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, 64))}… (${value.length} bytes)`;
}

/** What the sidecar calls a JSON value of the wrong kind: "a number 42", "an object {…}". */
function describeValue(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  const kind =
    value === null
      ? "null"
      : Array.isArray(value)
        ? "an array"
        : typeof value === "object"
          ? "an object"
          : typeof value === "string"
            ? "a string"
            : typeof value === "boolean"
              ? "a boolean"
              : typeof value === "number"
                ? "a number"
                : `a ${typeof value}`;
  return `${kind} ${quotePrefix(text)}`;
}

/** engine.ParseRevision's complaint about a revision string, or undefined if it is canonical. */
export function revisionProblem(revision: string): string | undefined {
  if (revision === "") {
    return 'revision is empty: want a decimal u64 string such as "42"';
  }
  if (revision.length > MAX_REVISION.length) {
    return `revision ${quotePrefix(revision)} is longer than 20 digits: it does not fit in a u64`;
  }
  if (!/^[0-9]+$/.test(revision)) {
    return `revision ${quotePrefix(revision)} is not canonical: only the digits 0-9 are allowed`;
  }
  if (revision.length > 1 && revision[0] === "0") {
    return `revision ${quotePrefix(revision)} is not canonical: leading zeros`;
  }
  if (revision.length === MAX_REVISION.length && revision > MAX_REVISION) {
    return `revision ${quotePrefix(revision)} is larger than ${MAX_REVISION}, the largest u64`;
  }
  return undefined;
}

/** A JSON decoding type error of the handler's params struct (rpc decodeParams): no data. */
function wrongType(field: string, want: string, value: unknown): RpcError {
  const got =
    value === null ? "null" : Array.isArray(value) ? "array" : typeof value === "object" ? "object" : typeof value;
  return invalid(field, `want ${want}, got a JSON ${got}`, false);
}

/** engine.ParseEvent's optional string member. */
function checkEventString(params: Record<string, unknown>, field: string): void {
  const value = params[field];
  if (value !== undefined && value !== null && typeof value !== "string") {
    throw invalid(field, `want a string, got ${describeValue(value)}`);
  }
}

/** The checks of `invalidate` (engine.ParseEvent, then the channel member), in the sidecar's order. */
export function checkInvalidateParams(params: unknown): void {
  if (!isRecord(params)) {
    throw invalid("event", `want a JSON object {topic, revision}, got ${describeValue(params)}`);
  }
  const topic = params.topic;
  if (topic === undefined || topic === null) {
    throw invalid("topic", "is missing");
  }
  if (typeof topic !== "string") {
    throw invalid("topic", `want a string, got ${describeValue(topic)}`);
  }
  if (topic.trim() === "") {
    throw invalid("topic", 'is empty: want a stable name such as "app-config"');
  }
  const revision = params.revision;
  if (revision === undefined || revision === null) {
    throw invalid("revision", "is missing");
  }
  if (typeof revision !== "string") {
    throw invalid("revision", `want a string, got ${describeValue(revision)}`);
  }
  const problem = revisionProblem(revision);
  if (problem !== undefined) {
    throw invalid("revision", problem);
  }
  checkEventString(params, "epoch");
  checkEventString(params, "sourceId");
  const timestamp = params.timestampMs;
  if (timestamp !== undefined && timestamp !== null && (typeof timestamp !== "number" || !Number.isFinite(timestamp))) {
    throw invalid("timestampMs", `want a number (epoch milliseconds), got ${describeValue(timestamp)}`);
  }
  const channel = params.channel;
  if (channel !== undefined && channel !== null && typeof channel !== "string") {
    throw wrongType("channel", "a string", channel);
  }
  if (channel === "") {
    throw invalid("channel", "is empty: leave it out to reach every channel of the topic, or name one channel", false);
  }
}

/** The checks of `state.set` (rpc/handlers.go stateSet), plus that `data` is JSON as the caller meant it. */
export function checkSetParams(topic: unknown, data: unknown, expectedRevision: unknown, sourceId: unknown): void {
  for (const [field, value] of [
    ["topic", topic],
    ["expectedRevision", expectedRevision],
    ["sourceId", sourceId],
  ] as const) {
    if (value !== undefined && value !== null && typeof value !== "string") {
      throw wrongType(field, "a string", value);
    }
  }
  if (topic === undefined || topic === null || topic === "") {
    throw invalid("topic", "is missing", false);
  }
  if ((topic as string).trim() === "") {
    throw invalid("topic", 'is empty: want a stable name such as "app-config"');
  }
  if (data === undefined) {
    throw invalid("data", "is missing: send the topic's new state (any JSON value)", false);
  }
  if (typeof expectedRevision === "string") {
    const problem = revisionProblem(expectedRevision);
    if (problem !== undefined) {
      throw invalid("expectedRevision", problem);
    }
  }
  const problem = jsonProblem(data, "data");
  if (problem !== undefined) {
    throw new RpcError(ErrorCodes.InvalidParams, `invalid params: ${problem}`, { field: "data" });
  }
}

/**
 * The checks of `state.patch` (topic, expectedRevision and sourceId as state.set), plus that `patch`
 * is an RFC 6902 patch that JSON carries as written: -32602 naming the op's index.
 */
export function checkPatchParams(topic: unknown, patch: unknown, expectedRevision: unknown, sourceId: unknown): void {
  if (patch === undefined) {
    throw invalid("patch", "is missing: send an RFC 6902 JSON Patch, an array of operations", false);
  }
  // state.set's checks of topic, expectedRevision and sourceId; patch stands in for data.
  checkSetParams(topic, null, expectedRevision, sourceId);
  const problem = jsonProblem(patch, "patch");
  if (problem !== undefined) {
    throw new RpcError(ErrorCodes.InvalidParams, `invalid params: ${problem}`, { field: "patch" });
  }
  try {
    checkPatch(patch);
  } catch (error) {
    if (error instanceof JsonPatchError) {
      throw new RpcError(ErrorCodes.InvalidParams, `invalid params: patch: ${error.message}`, {
        field: "patch",
        ...(error.index === -1 ? {} : { index: error.index }),
      });
    }
    throw error;
  }
}

/**
 * Why `value` would not reach the other side as written, or undefined when JSON carries
 * it faithfully: JSON.stringify throws on a BigInt or a cycle, and silently turns a Map or
 * a Set into {}, NaN into null, a function into nothing. Objects with toJSON (Date) are
 * taken as their JSON. Names the path of the first offending value.
 */
export function jsonProblem(value: unknown, path: string): string | undefined {
  const ancestors = new Set<object>();
  const walk = (current: unknown, at: string): string | undefined => {
    switch (typeof current) {
      case "string":
      case "boolean":
        return undefined;
      case "number":
        return Number.isFinite(current)
          ? undefined
          : `${at}: ${current} is not a JSON number (it would be sent as null): send a finite number or null`;
      case "bigint":
        return `${at}: the BigInt ${current}n cannot be encoded as JSON: send it as a string (String(value)) or a number`;
      case "undefined":
        return `${at}: undefined is not JSON: send null, or leave the member out`;
      case "function":
      case "symbol":
        return `${at}: a ${typeof current} is not JSON: send data only`;
    }
    if (current === null) {
      return undefined;
    }
    const object = current as object;
    if (typeof (object as { toJSON?: unknown }).toJSON === "function") {
      return undefined; // a Date and friends say themselves what their JSON is
    }
    if (object instanceof Map || object instanceof Set || object instanceof WeakMap || object instanceof WeakSet) {
      const kind = object.constructor.name;
      const fix = object instanceof Map ? "Object.fromEntries(map)" : "[...set]";
      return `${at}: a ${kind} is not JSON (JSON.stringify would send {}): convert it, e.g. ${fix}`;
    }
    if (ancestors.has(object)) {
      return `${at}: refers back to an object that contains it (a cycle), which JSON cannot encode`;
    }
    ancestors.add(object);
    try {
      if (Array.isArray(object)) {
        for (let i = 0; i < object.length; i++) {
          const item: unknown = object[i];
          // JSON.stringify sends holes and undefined items as null: the length is kept.
          const problem = item === undefined ? undefined : walk(item, `${at}[${i}]`);
          if (problem !== undefined) {
            return problem;
          }
        }
        return undefined;
      }
      for (const [key, member] of Object.entries(object)) {
        if (member === undefined) {
          continue; // left out, as JSON.stringify does and as optional members mean
        }
        const problem = walk(member, /^[A-Za-z_$][\w$]*$/.test(key) ? `${at}.${key}` : `${at}[${JSON.stringify(key)}]`);
        if (problem !== undefined) {
          return problem;
        }
      }
      return undefined;
    } finally {
      ancestors.delete(object);
    }
  };
  try {
    return walk(value, path);
  } catch (error) {
    if (error instanceof RangeError) {
      return `${path}: nested too deeply to encode as JSON`;
    }
    throw error;
  }
}
