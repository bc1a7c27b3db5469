export type { ApplyOptions } from "./appliers/options.js";
export { piniaApplier } from "./appliers/pinia.js";
