export { createTauriLink, type TauriLink, type TauriLinkOptions } from "./links/tauri.js";
export { createTauriRelay, type TauriRelay, type TauriRelayOptions } from "./links/tauri-relay.js";
export { connectTauriWindow, type TauriWindowOptions } from "./links/tauri-window.js";
