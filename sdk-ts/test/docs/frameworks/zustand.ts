import { createRevisionSync, type StateSyncClient } from "@state-sync/sdk";
import { zustandApplier } from "@state-sync/sdk/zustand";
import { createStore } from "zustand/vanilla";

interface Counter {
  count: number;
  step: number;
  increment(): void;
}

export async function syncCounter(connection: StateSyncClient) {
  const counter = createStore<Counter>()((set) => ({
    count: 0,
    step: 1,
    increment: () => set((state) => ({ count: state.count + state.step })),
  }));
  // Only `count` is shared; `step` and the action stay as they are.
  const sync = createRevisionSync({
    topic: "counter",
    connection,
    applier: zustandApplier(counter, { pick: ["count"] }),
  });
  await sync.start();
  return { counter, sync };
}
