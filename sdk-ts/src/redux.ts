export type { ApplyOptions } from "./appliers/options.js";
export {
  APPLY_SNAPSHOT,
  type ApplySnapshotAction,
  type ReduxStoreLike,
  reduxApplier,
  revisionSyncReducer,
} from "./appliers/redux.js";
