import { createRevisionSync, type StateSyncClient } from "@state-sync/sdk";
import { valtioApplier } from "@state-sync/sdk/valtio";
import { proxy } from "valtio/vanilla";

export async function syncPlayer(connection: StateSyncClient) {
  const player = proxy({
    track: "",
    position: 0,
    volume: 0.5,
    mute() {
      player.volume = 0;
    },
  });
  // Every window plays the same track; each keeps its own volume.
  const sync = createRevisionSync({
    topic: "player",
    connection,
    applier: valtioApplier(player, { omit: ["volume"] }),
  });
  await sync.start();
  return { player, sync };
}
