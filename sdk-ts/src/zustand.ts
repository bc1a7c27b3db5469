export { type ZustandStoreLike, zustandApplier } from "./appliers/zustand.js";
