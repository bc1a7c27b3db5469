export { piniaApplier } from "./appliers/pinia.js";
