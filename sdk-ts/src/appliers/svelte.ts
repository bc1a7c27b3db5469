import type { Writable } from "svelte/store";
import type { SnapshotApplier } from "../revision-sync.js";
import { type ApplyOptions, checkApplyOptions, foldInto, foldValue } from "./options.js";

/**
 * Folds each snapshot into a Svelte writable store (ApplyOptions) with one `update`, so
 * subscribers run once. The store may hold any JSON value when no option needs keys.
 */
export function svelteApplier<S>(
  store: Pick<Writable<S>, "update">,
  options?: ApplyOptions<S>,
): SnapshotApplier<unknown> {
  const fold = checkApplyOptions(options, "svelteApplier");
  return {
    apply({ revision, data, deleted }) {
      store.update((current) => foldValue(current, data, fold, revision, deleted === true));
    },
  };
}

/**
 * Svelte 5 runes: folds each snapshot into a `$state` object in place (ApplyOptions). The
 * object keeps its identity, so `$derived` and `$effect` that read it follow.
 */
export function svelteStateApplier<S extends object>(state: S, options?: ApplyOptions<S>): SnapshotApplier<unknown> {
  const fold = checkApplyOptions(options, "svelteStateApplier");
  return {
    apply({ revision, data, deleted }) {
      foldInto(state as Record<string, unknown>, data, fold, revision, deleted === true);
    },
  };
}
