import { readFileSync } from "node:fs";
import { MessageChannel } from "node:worker_threads";
import { connect, createRevisionSync } from "@state-sync/sdk";
import { createMessagePortLink, type MessagePortLike } from "@state-sync/sdk/message-port";
import { afterEach, describe, expect, it } from "vitest";
import { createSidecarHost } from "../../src/relay.js";
import { until, within } from "../helpers/async.js";
import { disposeAll, startSidecar } from "./harness.js";

// The window side of README.md, verbatim (its imports are above, sorted by the linter).
async function syncAppConfig(port: MessagePortLike, render: (config: unknown) => void) {
  const client = await connect(createMessagePortLink(port));
  const sync = createRevisionSync({
    topic: "app-config",
    connection: client,
    applier: { apply: ({ data }) => render(data) },
    onError: (context) => console.warn("state-sync", context.phase, context.error),
  });
  await sync.start(); // the current state is applied before start() resolves
  return { client, sync };
}

afterEach(disposeAll);

describe("README", () => {
  it("shows the window-side code this test runs", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const snippet = /```ts\n\/\/ renderer\.ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(snippet, "the renderer.ts block in README.md").toBeDefined();
    const self = readFileSync(new URL(import.meta.url), "utf8");
    for (const part of (snippet ?? "").split("\n\n")) {
      for (const line of part.startsWith("import") ? part.trim().split("\n") : [part.trim()]) {
        expect(self.includes(line), `this test runs the README's code, and lacks:\n${line}`).toBe(true);
      }
    }
  });

  it("the window-side snippet syncs two windows through the relay and the real sidecar", async () => {
    const sidecar = startSidecar();
    const host = createSidecarHost({ link: sidecar.link });
    const hostClient = await within(host.connect(), "host connect");
    await hostClient.set("app-config", { theme: "dark" });

    const windows = [0, 1].map(() => {
      const { port1, port2 } = new MessageChannel();
      host.attachWindow(createMessagePortLink(port1)); // the main process's end
      const rendered: unknown[] = [];
      return { port: port2, rendered, render: (config: unknown) => void rendered.push(config) };
    });
    const [first, second] = await Promise.all(windows.map((w) => syncAppConfig(w.port, w.render)));
    expect(windows.map((w) => w.rendered)).toEqual([[{ theme: "dark" }], [{ theme: "dark" }]]);

    // Any window writes; every window applies.
    await first?.client.set("app-config", { theme: "light" });
    for (const window of windows) {
      await until(() => window.rendered.length === 2, "every window to render the write");
      expect(window.rendered[1]).toEqual({ theme: "light" });
    }
    expect(second?.sync.getLocalRevision()).toBe("2");
    host.close();
    await sidecar.finish();
  });
});
