// src/owner.ts: the page of the hidden "state-sync" window; it owns the sidecar
import type { Snapshot } from "@state-sync/sdk";
import { createTauriRelay } from "@state-sync/sdk/tauri";
import { invoke } from "@tauri-apps/api/core";
import { appDataDir, join } from "@tauri-apps/api/path";

export async function startStateSync() {
  return createTauriRelay({
    program: "binaries/statesync-sidecar", // as written in bundle.externalBin and in the capability
    args: ["--store-file", await join(await appDataDir(), "state.json")], // matched against its "args"
    getSnapshot: (topic) => invoke<Snapshot>("state_snapshot", { topic }), // topics of source "host"
    invalidateEvent: "state-changed", // lib.rs emits {topic, revision} when its state changes
    onStderr: (text) => console.warn("statesync-sidecar:", text),
  });
}
