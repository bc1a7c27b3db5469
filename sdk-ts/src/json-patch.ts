// RFC 6902 JSON Patch and RFC 6901 JSON Pointer: just enough to apply the sidecar's
// deltas (docs/protocol.md, "Deltas") and to check a patch before state.patch sends it.
// Ours rather than a dependency: the core has no runtime dependencies, and the official
// suite (json-patch/json-patch-tests) runs against this file in test/json-patch.test.ts.

/** One RFC 6902 operation. Members a patch carries beyond these are ignored, as the RFC says. */
export type JsonPatchOperation =
  | { op: "add" | "replace" | "test"; path: string; value: unknown }
  | { op: "remove"; path: string }
  | { op: "move" | "copy"; from: string; path: string };

export type JsonPatch = JsonPatchOperation[];

/**
 * Why a patch did not apply. `malformed`: the patch itself is wrong (not an array, an
 * unknown op, a member missing, a pointer that is not RFC 6901); `testFailed`: a `test`
 * op found another value; `notApplicable`: the document lacks what an op needs (a path
 * to remove or replace, a parent to add to, an array index out of range).
 */
export type JsonPatchErrorKind = "malformed" | "testFailed" | "notApplicable";

export class JsonPatchError extends Error {
  override name = "JsonPatchError";
  readonly kind: JsonPatchErrorKind;
  /** Index of the failing operation in the patch; -1 when the patch is not an array. */
  readonly index: number;
  /** The pointer the failure is about, when there is one. */
  readonly path: string | undefined;

  constructor(kind: JsonPatchErrorKind, index: number, message: string, path?: string) {
    super(index === -1 ? message : `patch[${index}]: ${message}`);
    this.kind = kind;
    this.index = index;
    this.path = path;
  }
}

/**
 * The reference tokens of an RFC 6901 pointer, unescaped: "" is the whole document, "/a~1b"
 * is ["a/b"]. Throws a TypeError naming the fix for a pointer that is not one.
 */
export function parsePointer(pointer: string): string[] {
  if (typeof pointer !== "string") {
    throw new TypeError(`JSON Pointer ${describe(pointer)} is not a string: write one such as "/settings/theme"`);
  }
  if (pointer === "") {
    return [];
  }
  if (pointer[0] !== "/") {
    throw new TypeError(
      `JSON Pointer ${JSON.stringify(pointer)} does not start with "/": write "/${pointer}", or "" for the whole document`,
    );
  }
  return pointer
    .slice(1)
    .split("/")
    .map((token) => {
      if (/~[^01]|~$/.test(token)) {
        throw new TypeError(
          `JSON Pointer ${JSON.stringify(pointer)} has a "~" not followed by 0 or 1: write "~0" for "~" and "~1" for "/"`,
        );
      }
      return token.replaceAll("~1", "/").replaceAll("~0", "~");
    });
}

/** A pointer from unescaped tokens: the inverse of parsePointer. */
export function formatPointer(tokens: readonly string[]): string {
  return tokens.map((token) => `/${token.replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

type Container = Record<string, unknown> | unknown[];

/**
 * Applies `patch` to `doc` and returns the new document; `doc` is never changed. The whole
 * patch applies or nothing does: a failing operation throws a JsonPatchError (with the
 * op's index) and the caller keeps `doc`. Parts of `doc` that the patch does not touch are
 * shared with the result, so the result is cheap for a small patch on a large document;
 * values the patch inserts are copies, never the patch's own objects. With `freeze`, for a
 * deeply frozen `doc` (the SDK's freezeData), the result is deeply frozen too.
 */
export function applyPatch<T = unknown>(doc: unknown, patch: unknown, options: { freeze?: boolean } = {}): T {
  if (!Array.isArray(patch)) {
    throw new JsonPatchError("malformed", -1, `a JSON Patch is an array of operations, got ${describe(patch)}`);
  }
  const own = new Owned(options.freeze === true);
  let root: unknown = doc;
  for (let index = 0; index < patch.length; index++) {
    root = applyOperation(root, patch[index], index, own);
  }
  // With freeze (for a deeply frozen doc): what this call made is frozen now, and the rest
  // was, without a walk over the parts the patch did not touch.
  for (const made of own.made ?? []) {
    Object.freeze(made);
  }
  return root as T;
}

/** The containers one applyPatch copied: only these may be changed in place. */
class Owned {
  readonly #copies = new WeakSet<object>();
  /** Every copy, when the result is to be frozen; inserted values are frozen as they go in. */
  readonly made: object[] | undefined;

  constructor(freeze: boolean) {
    this.made = freeze ? [] : undefined;
  }

  has(container: object): boolean {
    return this.#copies.has(container);
  }

  add(container: object): void {
    this.#copies.add(container);
    this.made?.push(container);
  }

  /** A value the patch inserts: a copy, frozen when the result is to be. */
  inserted(value: unknown): unknown {
    const copy = clone(value);
    return this.made === undefined ? copy : freezeJson(copy);
  }
}

/**
 * Checks the form of a patch without a document: an array of operations, each a known op
 * with the members it needs and RFC 6901 pointers. Throws a JsonPatchError of kind
 * `malformed` naming the op's index; whether the patch applies depends on the document.
 */
export function checkPatch(patch: unknown): asserts patch is JsonPatch {
  if (!Array.isArray(patch)) {
    throw new JsonPatchError("malformed", -1, `a JSON Patch is an array of operations, got ${describe(patch)}`);
  }
  patch.forEach((operation: unknown, index) => {
    if (!isObject(operation)) {
      throw new JsonPatchError(
        "malformed",
        index,
        `an operation is an object {op, path, …}, got ${describe(operation)}`,
      );
    }
    pointerMember(operation, "path", index);
    switch (operation.op) {
      case "add":
      case "replace":
      case "test":
        valueMember(operation, index);
        return;
      case "move":
      case "copy":
        pointerMember(operation, "from", index);
        return;
      case "remove":
        return;
      default:
        throw unknownOp(operation.op, index);
    }
  });
}

function unknownOp(op: unknown, index: number): JsonPatchError {
  return new JsonPatchError(
    "malformed",
    index,
    `op ${describe(op)} is not an RFC 6902 operation: use add, remove, replace, move, copy or test`,
  );
}

function applyOperation(root: unknown, operation: unknown, index: number, own: Owned): unknown {
  if (!isObject(operation)) {
    throw new JsonPatchError("malformed", index, `an operation is an object {op, path, …}, got ${describe(operation)}`);
  }
  const op = operation.op;
  const path = pointerMember(operation, "path", index);
  switch (op) {
    case "add":
      return add(root, path, own.inserted(valueMember(operation, index)), index, own);
    case "remove":
      return remove(root, path, index, own).root;
    case "replace":
      return replace(root, path, own.inserted(valueMember(operation, index)), index, own);
    case "move": {
      const from = pointerMember(operation, "from", index);
      if (from.pointer === path.pointer) {
        get(root, from, index); // moving a value onto itself changes nothing, but it must exist
        return root;
      }
      if (isPrefix(from.tokens, path.tokens)) {
        throw new JsonPatchError(
          "notApplicable",
          index,
          `move from ${JSON.stringify(from.pointer)} into its own child ${JSON.stringify(path.pointer)} is not possible`,
          path.pointer,
        );
      }
      const removed = remove(root, from, index, own);
      return add(removed.root, path, removed.value, index, own);
    }
    case "copy": {
      const from = pointerMember(operation, "from", index);
      return add(root, path, own.inserted(get(root, from, index)), index, own);
    }
    case "test": {
      const expected = valueMember(operation, index);
      let actual: unknown;
      let found = true;
      try {
        actual = get(root, path, index);
      } catch (error) {
        // A missing value is not the expected one: a failed test, as the sidecar counts it
        // (a conflict for state.patch), not a patch that does not fit the document.
        if (!(error instanceof JsonPatchError) || error.kind !== "notApplicable") throw error;
        found = false;
      }
      if (!found || !jsonEqual(actual, expected)) {
        throw new JsonPatchError(
          "testFailed",
          index,
          `test failed: the value at ${JSON.stringify(path.pointer)} is not ${bounded(expected)}`,
          path.pointer,
        );
      }
      return root;
    }
    default:
      throw unknownOp(op, index);
  }
}

interface Pointer {
  pointer: string;
  tokens: string[];
}

function pointerMember(operation: Record<string, unknown>, name: "path" | "from", index: number): Pointer {
  const pointer = operation[name];
  if (typeof pointer !== "string") {
    throw new JsonPatchError(
      "malformed",
      index,
      `"${name}" is ${pointer === undefined ? "missing" : describe(pointer)}: give a JSON Pointer string`,
    );
  }
  try {
    return { pointer, tokens: parsePointer(pointer) };
  } catch (error) {
    throw new JsonPatchError("malformed", index, `"${name}": ${(error as Error).message}`, pointer);
  }
}

function valueMember(operation: Record<string, unknown>, index: number): unknown {
  if (!Object.hasOwn(operation, "value") || operation.value === undefined) {
    throw new JsonPatchError("malformed", index, `${String(operation.op)} needs a "value" member`);
  }
  return operation.value;
}

/** The value at a pointer; absent values throw notApplicable. */
function get(root: unknown, { pointer, tokens }: Pointer, index: number): unknown {
  let current = root;
  for (const token of tokens) {
    current = child(current, token, pointer, index).value;
  }
  return current;
}

/** One step down: the member or element named by `token`, which must exist. */
function child(container: unknown, token: string, pointer: string, index: number): { value: unknown; at: number } {
  if (Array.isArray(container)) {
    const at = arrayIndex(token, container.length, false, pointer, index);
    return { value: container[at], at };
  }
  if (isObject(container) && Object.hasOwn(container, token)) {
    return { value: container[token], at: -1 };
  }
  throw new JsonPatchError("notApplicable", index, `${JSON.stringify(pointer)} does not exist`, pointer);
}

/**
 * An array index token ("0", or digits without a leading zero) of an array of `length`
 * elements: below the length, or equal to it for add (which inserts there).
 */
function arrayIndex(token: string, length: number, adding: boolean, pointer: string, index: number): number {
  if (!/^(0|[1-9][0-9]*)$/.test(token)) {
    throw new JsonPatchError(
      "notApplicable", // a pointer may name a member; only this document makes it an array
      index,
      token === "-"
        ? `path ${JSON.stringify(pointer)}: "-" names the end of an array, which only add can use`
        : `path ${JSON.stringify(pointer)}: ${JSON.stringify(token)} is not an array index (digits, no leading zero)`,
      pointer,
    );
  }
  const at = Number(token);
  if (at > length || (at === length && !adding)) {
    throw new JsonPatchError(
      "notApplicable",
      index,
      `path ${JSON.stringify(pointer)}: index ${token} is out of range (the array has ${length} element${length === 1 ? "" : "s"})`,
      pointer,
    );
  }
  return at;
}

/**
 * Copies the containers from the root to the parent of `tokens` (those not already
 * copied by this call) and returns the new root and that parent, now safe to change.
 */
function ownParent(
  root: unknown,
  { pointer, tokens }: Pointer,
  index: number,
  own: Owned,
): { root: unknown; parent: Container } {
  const newRoot = ownCopy(root, own);
  let parent = newRoot;
  for (let i = 0; i < tokens.length - 1; i++) {
    const token = tokens[i] as string;
    const { value, at } = child(parent, token, formatPointer(tokens.slice(0, i + 1)), index);
    const copy = ownCopy(value, own);
    if (copy !== value) {
      setMember(parent as Container, at === -1 ? token : at, copy);
    }
    parent = copy;
  }
  if (!Array.isArray(parent) && !isObject(parent)) {
    throw new JsonPatchError(
      "notApplicable",
      index,
      `path ${JSON.stringify(pointer)}: its parent is ${describe(parent)}, not an object or an array`,
      pointer,
    );
  }
  return { root: newRoot, parent };
}

function add(root: unknown, path: Pointer, value: unknown, index: number, own: Owned): unknown {
  if (path.tokens.length === 0) {
    return value;
  }
  const { root: newRoot, parent } = ownParent(root, path, index, own);
  const last = path.tokens[path.tokens.length - 1] as string;
  if (Array.isArray(parent)) {
    const at = last === "-" ? parent.length : arrayIndex(last, parent.length, true, path.pointer, index);
    parent.splice(at, 0, value);
  } else {
    setMember(parent, last, value);
  }
  return newRoot;
}

function replace(root: unknown, path: Pointer, value: unknown, index: number, own: Owned): unknown {
  if (path.tokens.length === 0) {
    return value;
  }
  const { root: newRoot, parent } = ownParent(root, path, index, own);
  const last = path.tokens[path.tokens.length - 1] as string;
  const { at } = child(parent, last, path.pointer, index); // must exist; set in place keeps member order
  setMember(parent, at === -1 ? last : at, value);
  return newRoot;
}

function remove(root: unknown, path: Pointer, index: number, own: Owned): { root: unknown; value: unknown } {
  if (path.tokens.length === 0) {
    // A document is a JSON value; none is left to hold. (A move from "" is refused
    // earlier, as a move into its own child.)
    throw new JsonPatchError(
      "notApplicable",
      index,
      'remove of "" would leave no document: replace "" with the value you want instead',
      "",
    );
  }
  const { root: newRoot, parent } = ownParent(root, path, index, own);
  const last = path.tokens[path.tokens.length - 1] as string;
  const { value, at } = child(parent, last, path.pointer, index);
  if (Array.isArray(parent)) {
    parent.splice(at, 1);
  } else {
    delete parent[last];
  }
  return { root: newRoot, value };
}

/** `value` itself when this call already copied it; else a shallow copy, marked as ours. */
function ownCopy(value: unknown, own: Owned): unknown {
  if (typeof value !== "object" || value === null || own.has(value)) {
    return value;
  }
  const copy: Container = Array.isArray(value) ? copyArray(value) : copyMembers(value as Record<string, unknown>);
  own.add(copy);
  return copy;
}

/** Spread for a frozen array (freezeData): V8 copies one about 100x slower with slice. */
function copyArray(value: unknown[]): unknown[] {
  return Object.isFrozen(value) ? [...value] : value.slice();
}

function copyMembers(source: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(source)) {
    setMember(copy, key, source[key]);
  }
  return copy;
}

/** Sets a member as data: a key "__proto__" is an own member, never the object's prototype. */
function setMember(container: Container, key: string | number, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(container, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    (container as Record<string, unknown>)[key] = value;
  }
}

/**
 * Freezes a JSON value deeply (Object.freeze), and returns it. It stops at objects already
 * frozen: after applyPatch on frozen data only the containers the patch copied and the
 * values it wrote are new, so freezing the result costs the size of the change.
 */
export function freezeJson<T>(value: T): T {
  if (typeof value !== "object" || value === null || Object.isFrozen(value)) {
    return value;
  }
  Object.freeze(value);
  if (Array.isArray(value)) {
    // By index: Object.keys would make a string per element of a long array.
    for (let i = 0; i < value.length; i++) {
      freezeJson(value[i]);
    }
  } else {
    for (const key of Object.keys(value)) {
      freezeJson((value as Record<string, unknown>)[key]);
    }
  }
  return value;
}

/** A deep copy of a JSON value (plain objects, arrays and primitives; "__proto__" kept a member). */
export function cloneJson<T>(value: T): T {
  return clone(value) as T;
}

function clone(value: unknown): unknown {
  if (typeof value !== "object" || value === null) {
    return value;
  }
  if (Array.isArray(value)) {
    return value.map(clone);
  }
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    setMember(copy, key, clone((value as Record<string, unknown>)[key]));
  }
  return copy;
}

/** JSON equality, as RFC 6902's test defines it: member order does not matter, element order does. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return false;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  const aKeys = Object.keys(a);
  const bObject = b as Record<string, unknown>;
  return (
    aKeys.length === Object.keys(bObject).length &&
    aKeys.every((key) => Object.hasOwn(bObject, key) && jsonEqual((a as Record<string, unknown>)[key], bObject[key]))
  );
}

function isPrefix(prefix: readonly string[], tokens: readonly string[]): boolean {
  return prefix.length < tokens.length && prefix.every((token, i) => tokens[i] === token);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${bounded(value)}`;
}

function bounded(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}
