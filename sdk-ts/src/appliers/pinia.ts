import type { StateTree, Store } from "pinia";
import type { SnapshotApplier } from "../revision-sync.js";

/**
 * Applies each snapshot as the whole state of a Pinia store: keys the snapshot has are
 * set (objects replaced, not merged), keys it lacks are removed. One `$patch`, so
 * subscribers see one mutation. (`store.$state = data` would merge, keeping stale keys.)
 */
export function piniaApplier<S extends StateTree>(store: Pick<Store<string, S>, "$patch">): SnapshotApplier<S> {
  return {
    apply({ data }) {
      store.$patch((state) => {
        const target = state as Record<string, unknown>;
        const next = data as Record<string, unknown>;
        for (const key of Object.keys(target)) {
          if (!(key in next)) {
            delete target[key];
          }
        }
        Object.assign(target, next);
      });
    },
  };
}
