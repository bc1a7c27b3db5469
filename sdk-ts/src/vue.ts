export type { ApplyOptions } from "./appliers/options.js";
export { vueApplier } from "./appliers/vue.js";
