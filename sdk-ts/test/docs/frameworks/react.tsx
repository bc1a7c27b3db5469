import type { StateSyncClient } from "@state-sync/sdk";
import { useRevisionSync } from "@state-sync/sdk/react";

export function Theme({ connection }: { connection: StateSyncClient }) {
  const settings = useRevisionSync({
    connection,
    topic: "settings",
    initialState: { theme: "light", fontSize: 12 },
    pick: ["theme"],
  });
  return <p className={settings.theme}>theme: {settings.theme}</p>;
}
