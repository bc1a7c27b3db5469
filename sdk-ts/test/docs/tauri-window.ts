// src/state-sync.ts: in every window that shows synced state
import { createRevisionSync, type StateSyncClient } from "@state-sync/sdk";
import { connectTauriWindow } from "@state-sync/sdk/tauri";

/** Keeps render() fed with a topic; when the owner window goes away, waits for the next one. */
export async function syncTopic(
  topic: string,
  render: (data: unknown) => void,
  source: "store" | "host" = "store", // "host": a topic lib.rs answers
  ownerTimeoutMs = 10_000,
): Promise<StateSyncClient> {
  const client = await connectTauriWindow({ ownerTimeoutMs });
  const sync = createRevisionSync({
    topic,
    source,
    connection: client,
    applier: { apply: ({ data }) => render(data) },
  });
  await sync.start(); // the current state is applied before start() resolves
  client.onClose(() => {
    sync.stop(); // the owner closed: a ConnectionClosedError, not a hang
    void syncTopic(topic, render, source, Number.POSITIVE_INFINITY);
  });
  return client;
}
