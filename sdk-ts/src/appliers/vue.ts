import { isRef, type Ref } from "vue";
import type { SnapshotApplier } from "../revision-sync.js";
import { type ApplyOptions, checkApplyOptions, foldInto, foldValue } from "./options.js";

/**
 * Folds each snapshot into Vue state (ApplyOptions). A `ref` (or `shallowRef`) gets a new
 * value, so its watchers fire once and it may hold any JSON value; a `reactive` object is
 * changed in place, key by key, and keeps its identity.
 */
export function vueApplier<S>(target: Ref<S>, options?: ApplyOptions<S>): SnapshotApplier<unknown>;
export function vueApplier<S extends object>(target: S, options?: ApplyOptions<S>): SnapshotApplier<unknown>;
export function vueApplier<S extends object>(
  target: Ref<unknown> | S,
  options?: ApplyOptions<S>,
): SnapshotApplier<unknown> {
  const fold = checkApplyOptions(options, "vueApplier");
  return {
    apply({ revision, data, deleted }) {
      if (isRef(target)) {
        target.value = foldValue(target.value, data, fold, revision, deleted === true);
      } else {
        foldInto(target as Record<string, unknown>, data, fold, revision, deleted === true);
      }
    },
  };
}
