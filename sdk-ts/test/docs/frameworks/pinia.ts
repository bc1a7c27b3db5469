import { createRevisionSync, type StateSyncClient } from "@state-sync/sdk";
import { piniaApplier } from "@state-sync/sdk/pinia";
import { defineStore } from "pinia";

export const useSettings = defineStore("settings", {
  state: () => ({ theme: "light", fontSize: 12 }),
  getters: { isDark: (state) => state.theme === "dark" },
});

// A composable: call it from a component's setup, or anywhere Pinia is active.
export async function useSyncedSettings(connection: StateSyncClient) {
  const settings = useSettings();
  const sync = createRevisionSync({ topic: "settings", connection, applier: piniaApplier(settings) });
  await sync.start();
  return { settings, sync };
}
