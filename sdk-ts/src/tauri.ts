export { createTauriLink, type TauriLink, type TauriLinkOptions } from "./links/tauri.js";
