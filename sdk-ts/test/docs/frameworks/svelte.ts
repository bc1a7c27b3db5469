import { createRevisionSync, type StateSyncClient } from "@state-sync/sdk";
import { svelteApplier } from "@state-sync/sdk/svelte";
import { writable } from "svelte/store";

export async function syncTodos(connection: StateSyncClient) {
  const todos = writable({ items: [] as string[], filter: "all" });
  // patch: the topic sets `items`; the window's own `filter` is kept.
  const sync = createRevisionSync({
    topic: "todos",
    connection,
    applier: svelteApplier(todos, { mode: "patch" }),
  });
  await sync.start();
  return { todos, sync };
}
