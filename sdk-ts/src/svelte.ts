export type { ApplyOptions } from "./appliers/options.js";
export { svelteApplier, svelteStateApplier } from "./appliers/svelte.js";
