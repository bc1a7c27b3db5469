// src/state-sync.ts: in the webview that owns the sidecar
import { connect, createRevisionSync } from "@state-sync/sdk";
import { createTauriLink } from "@state-sync/sdk/tauri";
import { appDataDir, join } from "@tauri-apps/api/path";

const storeFile = await join(await appDataDir(), "state.json");
export const client = await connect(
  await createTauriLink({
    program: "binaries/statesync-sidecar", // as written in bundle.externalBin and in the capability
    args: ["--store-file", storeFile], // matched one by one against the capability's "args"
    onStderr: (text) => console.warn("statesync-sidecar:", text),
  }),
);

export const settings = createRevisionSync({
  topic: "app-config",
  connection: client,
  applier: { apply: ({ data }) => console.log("app-config is now", data) },
});
await settings.start(); // the stored state is applied before start() resolves
await client.set("app-config", { theme: "dark" }); // every window's applier gets revision n+1
