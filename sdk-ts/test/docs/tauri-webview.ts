// src/state-sync.ts: in the webview that owns the sidecar
import { connect, createRevisionSync } from "@state-sync/sdk";
import { createTauriLink } from "@state-sync/sdk/tauri";
import { appDataDir, join } from "@tauri-apps/api/path";
import { Child } from "@tauri-apps/plugin-shell";

// A reload of this page leaves the old page's sidecar running (the plugin keeps it): end it.
const previous = sessionStorage.getItem("statesync-sidecar-pid");
if (previous !== null) await new Child(Number(previous)).kill();

const storeFile = await join(await appDataDir(), "state.json");
const link = await createTauriLink({
  program: "binaries/statesync-sidecar", // as written in bundle.externalBin and in the capability
  args: ["--store-file", storeFile], // matched one by one against the capability's "args"
  onStderr: (text) => console.warn("statesync-sidecar:", text),
});
sessionStorage.setItem("statesync-sidecar-pid", String(link.child.pid));
export const client = await connect(link);

export const settings = createRevisionSync({
  topic: "app-config",
  connection: client,
  applier: { apply: ({ data }) => console.log("app-config is now", data) },
});
await settings.start(); // the stored state is applied before start() resolves
await client.set("app-config", { theme: "dark" }); // every syncing window applies the new revision
