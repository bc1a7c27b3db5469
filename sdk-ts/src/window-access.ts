/**
 * Per-window access rules of the relay (docs/security.md, "Per-window access rules").
 *
 * A window attached without rules may do what the protocol allows. A window attached with
 * rules may do only what they name: a rule left out allows nothing. Topic patterns are
 * exact names, or a prefix followed by `*` ("settings/*"); `*` alone is every topic.
 */
export interface WindowAccess {
  /** Topics the window may open channels on and read (`channel.open`, `state.get`). */
  open?: readonly string[];
  /** Topics the window may write (`state.set`, `state.patch`, `state.delete`). */
  write?: readonly string[];
  /**
   * Whether the window may send `invalidate` (with or without `channel`); the topic must
   * also be one it may open. Default false.
   */
  invalidate?: boolean;
}

/** The rule a refused call broke, as `error.data.rule` names it. */
export type AccessRule = "open" | "write" | "invalidate" | "method";

/** Code of a call the relay refused by the window's access rules (a relay code, not the sidecar's). */
export const AccessDenied = -32010;

export interface AccessDenial {
  code: typeof AccessDenied;
  message: string;
  data: { rule: AccessRule; method: string; topic?: string };
}

/** Checked rules: patterns read once, when the window is attached. */
export interface CompiledAccess {
  readonly rules: WindowAccess;
  may(rule: "open" | "write", topic: string): boolean;
}

/** Methods that reach no topic beyond the window's own channels (the relay checks ownership). */
const topicFree = new Set([
  "initialize",
  "channel.close",
  "channel.refresh",
  "channel.status",
  "channel.list",
  "shutdown",
]);

export function compileAccess(access: WindowAccess): CompiledAccess {
  const lists = { open: readPatterns(access.open, "open"), write: readPatterns(access.write, "write") };
  if (access.invalidate !== undefined && typeof access.invalidate !== "boolean") {
    throw new TypeError(`access.invalidate is ${JSON.stringify(access.invalidate)}: use true or false`);
  }
  return {
    rules: { open: [...(access.open ?? [])], write: [...(access.write ?? [])], invalidate: access.invalidate === true },
    may: (rule, topic) => lists[rule].some((match) => match(topic)),
  };
}

function readPatterns(patterns: readonly string[] | undefined, rule: string): ((topic: string) => boolean)[] {
  if (patterns === undefined) {
    return [];
  }
  if (!Array.isArray(patterns)) {
    throw new TypeError(`access.${rule} is not an array: list the topics, e.g. ["app-config", "settings/*"]`);
  }
  return patterns.map((pattern: unknown, i) => {
    if (typeof pattern !== "string" || pattern === "") {
      throw new TypeError(`access.${rule}[${i}] is ${JSON.stringify(pattern)}: use a topic name, or a prefix and "*"`);
    }
    const star = pattern.indexOf("*");
    if (star !== -1 && star !== pattern.length - 1) {
      throw new TypeError(
        `access.${rule}[${i}] is ${JSON.stringify(pattern)}: "*" may only end a pattern ("settings/*", or "*" for every topic)`,
      );
    }
    if (star === -1) {
      return (topic: string) => topic === pattern;
    }
    const prefix = pattern.slice(0, -1);
    return (topic: string) => topic.startsWith(prefix);
  });
}

/**
 * Why the window may not make this call, or undefined when it may. `params` is the
 * relay's one reading of the message, so the topic checked is the topic forwarded.
 */
export function deniedCall(
  access: CompiledAccess,
  method: string,
  params: Record<string, unknown> | undefined,
): AccessDenial | undefined {
  if (topicFree.has(method)) {
    return undefined;
  }
  const topic = typeof params?.topic === "string" ? params.topic : undefined;
  const deny = (rule: AccessRule, why: string): AccessDenial => ({
    code: AccessDenied,
    message: `${method}: ${why}; the host grants it in this window's access rules (attachWindow(link, {access}))`,
    data: { rule, method, ...(topic === undefined ? {} : { topic }) },
  });
  const outside = (rule: "open" | "write") =>
    deny(
      rule,
      `topic ${JSON.stringify(topic)} is outside this window's "${rule}" rule ${JSON.stringify(access.rules[rule])}`,
    );
  switch (method) {
    case "channel.open":
    case "state.get":
      return topic !== undefined && access.may("open", topic) ? undefined : outside("open");
    case "state.set":
    case "state.patch":
    case "state.delete":
      return topic !== undefined && access.may("write", topic) ? undefined : outside("write");
    case "invalidate":
      if (access.rules.invalidate !== true) {
        return deny("invalidate", `this window's "invalidate" rule is false: it may not send invalidate`);
      }
      return topic !== undefined && access.may("open", topic) ? undefined : outside("open");
    default:
      // A method added to the protocol later is refused until a rule says who may use it.
      return deny("method", "this window's access rules do not cover this method");
  }
}

/** Whether a notification about `topic` (a topic-wide error) may be shown to the window. */
export function mayHear(access: CompiledAccess, topic: unknown): boolean {
  return typeof topic !== "string" || access.may("open", topic);
}
