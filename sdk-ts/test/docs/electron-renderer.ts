// renderer.ts: the page
import { connect, createRevisionSync } from "@state-sync/sdk";
import { createMessagePortLink } from "@state-sync/sdk/message-port";

async function syncSettings(port: MessagePort): Promise<void> {
  const client = await connect(createMessagePortLink(port));
  const settings = createRevisionSync({
    topic: "app-config",
    connection: client,
    applier: { apply: ({ data }) => console.log("app-config is now", data) },
  });
  await settings.start(); // the current state is applied before start() resolves
  // Any window may write; every window, this one included, applies the new revision.
  document.querySelector("#dark")?.addEventListener("click", () => void client.set("app-config", { theme: "dark" }));
}

window.addEventListener("message", (event) => {
  const [port] = event.ports;
  // Only the port our preload posted: from this very window, under our name.
  if (event.source !== window || event.data !== "state-sync:port" || port === undefined) return;
  syncSettings(port).catch((error: unknown) => console.warn("state-sync:", error)); // e.g. closed while starting
});
