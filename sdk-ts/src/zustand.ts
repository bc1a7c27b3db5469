export type { ApplyOptions } from "./appliers/options.js";
export { type ZustandStoreLike, zustandApplier } from "./appliers/zustand.js";
