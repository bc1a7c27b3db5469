import type { SnapshotApplier } from "../revision-sync.js";
import { type ApplyOptions, checkApplyOptions, foldObject } from "./options.js";

/** The part of a Zustand store (vanilla or React) that the applier uses. */
export interface ZustandStoreLike<S> {
  getState(): S;
  setState(state: S, replace: true): void;
}

/**
 * Folds each snapshot into a Zustand store's state (ApplyOptions) and sets the result with
 * `setState(next, true)`, so subscribers hear one change. The store's actions survive: a
 * function-valued key is never removed or overwritten, and with mode "replace" the other
 * keys the snapshot lacks are removed (a plain `setState(data)` would keep them).
 */
export function zustandApplier<S>(store: ZustandStoreLike<S>, options?: ApplyOptions<S>): SnapshotApplier<unknown> {
  const fold = checkApplyOptions(options, "zustandApplier");
  return {
    apply({ revision, data, deleted }) {
      store.setState(foldObject(store.getState(), data, fold, revision, deleted === true), true);
    },
  };
}
