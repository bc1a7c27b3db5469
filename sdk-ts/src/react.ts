export type { ApplyOptions } from "./appliers/options.js";
export { type UseRevisionSyncOptions, useRevisionSync } from "./appliers/react.js";
