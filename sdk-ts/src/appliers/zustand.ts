import type { SnapshotApplier } from "../revision-sync.js";

/** The part of a Zustand store (vanilla or React) that the applier uses. */
export interface ZustandStoreLike<S> {
  setState(state: S, replace: true): void;
}

/**
 * Applies each snapshot as the whole state of a Zustand store: `setState(data, true)`
 * replaces it (keeping no stale keys). Store actions live in the state too, so a store
 * with actions should keep its data under one key and sync that key's store instead,
 * or merge the actions back in a custom applier.
 */
export function zustandApplier<S>(store: ZustandStoreLike<S>): SnapshotApplier<S> {
  return {
    apply({ data }) {
      store.setState(data, true);
    },
  };
}
