import { createRevisionSync, type StateSyncClient } from "@state-sync/sdk";
import { reduxApplier, revisionSyncReducer } from "@state-sync/sdk/redux";
import { combineReducers, legacy_createStore } from "redux";

interface Session {
  user: string;
  lastSeen: number;
}

const session = revisionSyncReducer("session", (state: Session = { user: "", lastSeen: 0 }) => state);

export async function syncSession(connection: StateSyncClient) {
  const store = legacy_createStore(combineReducers({ session }));
  const sync = createRevisionSync({ topic: "session", connection, applier: reduxApplier(store, "session") });
  await sync.start();
  return { store, sync };
}
