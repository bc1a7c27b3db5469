export { createMemoryLinkPair } from "./links/memory.js";
