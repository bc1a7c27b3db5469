import type { Revision } from "../protocol.js";
import type { SnapshotApplier } from "../revision-sync.js";
import { type ApplyOptions, checkApplyOptions, type Fold, foldValue } from "./options.js";

/** The type of the action reduxApplier dispatches. */
export const APPLY_SNAPSHOT = "state-sync/applySnapshot";

/**
 * One snapshot for the reducer of `topic`. Plain JSON, so it passes Redux Toolkit's
 * serializability check and shows in the devtools; `meta` carries the ApplyOptions.
 */
export interface ApplySnapshotAction {
  type: typeof APPLY_SNAPSHOT;
  payload: { topic: string; revision: Revision; data: unknown; deleted?: true };
  meta: { mode: "replace" | "patch"; pick?: string[]; omit?: string[] };
}

/** The part of a Redux store the applier uses. */
export interface ReduxStoreLike {
  dispatch(action: ApplySnapshotAction): unknown;
}

/**
 * Dispatches each snapshot as an ApplySnapshotAction for `topic`; the reducer made by
 * revisionSyncReducer(topic, …) folds it into its state with the options given here.
 */
export function reduxApplier<S = Record<string, unknown>>(
  store: ReduxStoreLike,
  topic: string,
  options?: ApplyOptions<S>,
): SnapshotApplier<unknown> {
  checkApplyOptions(options, "reduxApplier");
  const meta: ApplySnapshotAction["meta"] = { mode: options?.mode ?? "replace" };
  if (options?.pick !== undefined) meta.pick = [...options.pick];
  if (options?.omit !== undefined) meta.omit = [...options.omit];
  return {
    apply({ revision, data, deleted }) {
      const payload: ApplySnapshotAction["payload"] = { topic, revision, data };
      if (deleted === true) payload.deleted = true;
      store.dispatch({ type: APPLY_SNAPSHOT, payload, meta });
    },
  };
}

/**
 * Wraps `reducer` so that the snapshots of `topic` become its state; every other action,
 * including those for other topics, goes to `reducer`. For a slice that only syncs, pass
 * `(state = initial) => state`.
 */
export function revisionSyncReducer<S, A extends { type: string } = { type: string }>(
  topic: string,
  reducer: (state: S | undefined, action: A) => S,
): (state: S | undefined, action: A | ApplySnapshotAction) => S {
  return (state, action) => {
    if (!isApplySnapshot(action) || action.payload.topic !== topic) {
      return reducer(state, action as A);
    }
    const current = state ?? reducer(undefined, { type: `${APPLY_SNAPSHOT}/init` } as A);
    const fold: Fold = checkApplyOptions(action.meta, "revisionSyncReducer");
    return foldValue(current, action.payload.data, fold, action.payload.revision, action.payload.deleted === true);
  };
}

function isApplySnapshot(action: { type: string }): action is ApplySnapshotAction {
  return action.type === APPLY_SNAPSHOT;
}
