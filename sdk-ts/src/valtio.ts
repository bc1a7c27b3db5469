export type { ApplyOptions } from "./appliers/options.js";
export { valtioApplier } from "./appliers/valtio.js";
