import { createTauriLink } from "./links/tauri.js";
import { createTauriRelay } from "./links/tauri-relay.js";
import { connectTauriWindow } from "./links/tauri-window.js";

export type { TauriLink, TauriLinkOptions } from "./links/tauri.js";
export type { TauriRelay, TauriRelayOptions } from "./links/tauri-relay.js";
export type { TauriWindowOptions } from "./links/tauri-window.js";
// One list in alphabetical order, the order of an ES module namespace's keys.
export { connectTauriWindow, createTauriLink, createTauriRelay };
