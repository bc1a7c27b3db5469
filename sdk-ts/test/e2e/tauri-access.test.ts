// createTauriRelay's windowAccess: the rules of each window, by label, through the owner's
// relay to the real statesync-sidecar, with tauri-app/app.ts playing Tauri's core.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { StateSyncClient } from "../../src/client.js";
import { until, within } from "../helpers/async.js";
import { seededRandom } from "../helpers/streams.js";
import { sidecarBinary } from "../integration/harness.js";
import { TauriApp } from "./tauri-app/app.js";

let app: TauriApp;
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "state-sync-tauri-access-"));
  app = new TauriApp({ sidecar: sidecarBinary(), appDataDir: dir, random: seededRandom(17) });
});

afterEach(async () => {
  const children = [...app.shell.children.values()];
  app.dispose();
  await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((r) => child.once("exit", r)) : 0)));
  rmSync(dir, { recursive: true, force: true });
});

describe("createTauriRelay windowAccess (real sidecar)", () => {
  it("a window is held to the rules of its label; a window without rules is not", async () => {
    const owner = await app.open("state-sync");
    const relay = await within(
      owner.api.createTauriRelay({
        program: "binaries/statesync-sidecar",
        windowAccess: (label) => (label === "preview" ? { open: ["app-config"] } : undefined),
      }),
      "the owner to start the relay",
    );
    const host = await relay.connect();
    await host.set("secret", { key: "s3cr3t" });

    const rendered: unknown[] = [];
    const preview = await app.open("preview");
    const previewClient: StateSyncClient = await within(
      preview.api.syncTopic("app-config", (data) => rendered.push(data)),
      "preview to sync app-config",
    );
    const main = await app.open("main");
    const mainClient = await within(
      main.api.syncTopic("app-config", () => {}),
      "main to sync app-config",
    );

    await expect(previewClient.set("app-config", { theme: "x" })).rejects.toMatchObject({
      code: -32010,
      data: { rule: "write", topic: "app-config" },
    });
    await expect(previewClient.get("secret")).rejects.toMatchObject({ code: -32010, data: { rule: "open" } });
    await expect(previewClient.openChannel({ channel: "peek", topic: "secret" })).rejects.toMatchObject({
      code: -32010,
    });

    await mainClient.set("app-config", { theme: "dark" });
    await until(() => rendered.length === 1, "preview to apply main's write");
    expect(rendered).toEqual([{ theme: "dark" }]);
    expect(await mainClient.get("secret")).toMatchObject({ data: { key: "s3cr3t" } });
  });
});
