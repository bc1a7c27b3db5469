import type { SnapshotApplier } from "../revision-sync.js";
import { type ApplyOptions, checkApplyOptions, foldInto } from "./options.js";

/**
 * Folds each snapshot into a Valtio `proxy` in place (ApplyOptions). Valtio batches the
 * mutations of one apply into one notification; actions kept on the proxy survive.
 */
export function valtioApplier<S extends object>(state: S, options?: ApplyOptions<S>): SnapshotApplier<unknown> {
  const fold = checkApplyOptions(options, "valtioApplier");
  return {
    apply({ revision, data, deleted }) {
      foldInto(state as Record<string, unknown>, data, fold, revision, deleted === true);
    },
  };
}
