import type { StateTree, Store } from "pinia";
import type { SnapshotApplier } from "../revision-sync.js";
import { type ApplyOptions, checkApplyOptions, foldInto } from "./options.js";

/**
 * Folds each snapshot into a Pinia store's state (ApplyOptions) in one `$patch`, so
 * subscribers see one mutation. With mode "replace", keys the snapshot lacks are removed
 * and objects are replaced, not merged (`store.$state = data` would merge, keeping stale
 * keys).
 */
export function piniaApplier<S extends StateTree>(
  store: Pick<Store<string, S>, "$patch">,
  options?: ApplyOptions<S>,
): SnapshotApplier<unknown> {
  const fold = checkApplyOptions(options, "piniaApplier");
  return {
    apply({ revision, data, deleted }) {
      store.$patch((state) => foldInto(state as Record<string, unknown>, data, fold, revision, deleted === true));
    },
  };
}
