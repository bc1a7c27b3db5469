import { createRevisionSync, type StateSyncClient } from "@state-sync/sdk";
import { vueApplier } from "@state-sync/sdk/vue";
import { reactive } from "vue";

export async function syncSettings(connection: StateSyncClient) {
  // `draft` is this window's own: omit keeps it out of the sync.
  const settings = reactive({ theme: "light", fontSize: 12, draft: "" });
  const sync = createRevisionSync({
    topic: "settings",
    connection,
    applier: vueApplier(settings, { omit: ["draft"] }),
  });
  await sync.start(); // the current settings are applied before start() resolves
  return { settings, sync };
}
