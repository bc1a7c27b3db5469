import type { Revision } from "../protocol.js";

/** The top-level keys of a state object, as the applier options name them. */
type KeyOf<S> = S extends object ? Extract<keyof S, string> : string;

/**
 * How every framework applier folds a snapshot into local state; the same names for all of
 * them (docs/frameworks.md).
 *
 * - `mode: "replace"` (the default): the synced keys become the snapshot's; a synced key
 *   the snapshot lacks is removed. `"patch"`: the snapshot's keys are set, the others kept.
 * - `pick`: only these top-level keys are synced; `omit`: these keys stay local. Never both:
 *   the type rejects it, and so does the applier at run time for untyped callers.
 *
 * Values are replaced whole, never merged below the top level. A key whose local value is a
 * function (a store action) is neither removed nor overwritten: JSON never carries one.
 */
export type ApplyOptions<S = Record<string, unknown>> = { mode?: "replace" | "patch" } & (
  | { pick?: readonly KeyOf<S>[]; omit?: never }
  | { omit?: readonly KeyOf<S>[]; pick?: never }
);

/** The checked form of ApplyOptions that the fold functions take. */
export interface Fold {
  readonly patch: boolean;
  /** null when every key is synced. */
  readonly synced: ((key: string) => boolean) | null;
}

/**
 * Checks options once, when the applier is made, so a mistake shows before any snapshot.
 * Takes `unknown`: it is also the check for callers without types.
 */
export function checkApplyOptions(options: unknown, who: string): Fold {
  const { mode = "replace", pick, omit } = (options ?? {}) as { mode?: unknown; pick?: unknown; omit?: unknown };
  if (mode !== "replace" && mode !== "patch") {
    throw new TypeError(`${who}: mode ${JSON.stringify(mode)} is not "replace" or "patch": pass one of them, or none`);
  }
  if (pick !== undefined && omit !== undefined) {
    throw new TypeError(
      `${who}: pick and omit are both given: list the synced keys in pick, or the local-only keys in omit`,
    );
  }
  for (const [name, keys] of [
    ["pick", pick],
    ["omit", omit],
  ] as const) {
    if (keys !== undefined && (!Array.isArray(keys) || !keys.every((key) => typeof key === "string"))) {
      throw new TypeError(`${who}: ${name} is ${JSON.stringify(keys)}: pass an array of top-level key names`);
    }
  }
  const listed = new Set((pick ?? omit ?? []) as string[]);
  const synced =
    pick !== undefined
      ? (key: string) => listed.has(key)
      : omit !== undefined
        ? (key: string) => !listed.has(key)
        : null;
  return { patch: mode === "patch", synced };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Applies the snapshot's keys to `target` in place: for proxies that track their own
 * mutations (Vue reactive, Valtio, Svelte $state, a Pinia $patch draft). A deleted topic
 * (`deleted`, state.delete) has no keys: mode "replace" removes the synced ones, "patch"
 * changes nothing.
 */
export function foldInto(
  target: Record<string, unknown>,
  data: unknown,
  fold: Fold,
  revision: Revision,
  deleted = false,
): void {
  const { set, remove } = plan(target, deleted ? {} : data, fold, revision);
  for (const key of remove) {
    delete target[key];
  }
  for (const [key, value] of set) {
    target[key] = value;
  }
}

/** The folded state as a new object, `current` untouched: for stores that compare by identity. */
export function foldObject<S>(current: S, data: unknown, fold: Fold, revision: Revision, deleted = false): S {
  const next: Record<string, unknown> = { ...(current as Record<string, unknown>) };
  foldInto(next, data, fold, revision, deleted);
  return next as S;
}

/**
 * Like foldObject, for stores that may hold any JSON value (a ref, a writable, a reducer's
 * state): with neither pick, omit nor patch, a snapshot that is not an object, or a state
 * that is not, is simply the new state (null for a deleted topic).
 */
export function foldValue<S>(current: S, data: unknown, fold: Fold, revision: Revision, deleted = false): S {
  if (!fold.patch && fold.synced === null && (deleted || !isObject(data) || !isObject(current))) {
    return data as S;
  }
  if (!isObject(current)) {
    throw new TypeError(
      `snapshot ${revision}: the local state is ${describe(current)}, not an object: pick, omit and mode "patch" ` +
        'work on an object\'s top-level keys; start from an object, or use mode "replace" without pick or omit',
    );
  }
  return foldObject(current, data, fold, revision, deleted);
}

function plan(
  current: Record<string, unknown>,
  data: unknown,
  { patch, synced }: Fold,
  revision: Revision,
): { set: [string, unknown][]; remove: string[] } {
  if (!isObject(data)) {
    throw new TypeError(
      `snapshot ${revision}: data is ${describe(data)}, not an object: this applier syncs an object's top-level ` +
        "keys; write an object to the topic",
    );
  }
  const action = (key: string) => typeof current[key] === "function";
  const set: [string, unknown][] = [];
  for (const key of Object.keys(data)) {
    if ((synced === null || synced(key)) && !action(key)) {
      if (key === "__proto__") {
        throw new TypeError(`snapshot ${revision}: key "__proto__" cannot be applied to an object: rename it`);
      }
      set.push([key, data[key]]);
    }
  }
  const remove = patch
    ? []
    : Object.keys(current).filter(
        (key) => (synced === null || synced(key)) && !Object.hasOwn(data, key) && !action(key),
      );
  return { set, remove };
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null || value === undefined) return String(value);
  return typeof value === "object" ? "an object" : `a ${typeof value} (${JSON.stringify(value)})`;
}
