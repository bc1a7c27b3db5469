import { MessageChannel } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { connect, type StateSyncClient } from "../../src/client.js";
import { createMessagePortLink } from "../../src/links/message-port.js";
import type { Snapshot } from "../../src/protocol.js";
import { createSidecarHost, type SidecarHost } from "../../src/relay.js";
import { createRevisionSync } from "../../src/revision-sync.js";
import { gate, manualSubscriber, until, within } from "../helpers/async.js";
import { answered, countFromSidecar, disposeAll, startSidecar } from "./harness.js";

afterEach(disposeAll);

/** A window as in Electron: its own connection over a MessagePort, relayed by the host. */
async function openWindow(host: SidecarHost): Promise<{ client: StateSyncClient; close: () => void }> {
  const { port1, port2 } = new MessageChannel();
  host.attachWindow(createMessagePortLink(port2));
  const client = await within(connect(createMessagePortLink(port1)), "window connect");
  return { client, close: () => port1.close() };
}

function latestApplier() {
  let latest = "0";
  const waiters: { revision: string; open: () => void }[] = [];
  return {
    get latest() {
      return latest;
    },
    apply({ revision }: { revision: string }) {
      latest = revision;
      for (const waiter of waiters.filter((w) => w.revision === revision)) waiter.open();
    },
    reached(revision: string) {
      if (latest === revision) return Promise.resolve();
      const arrived = gate();
      waiters.push({ revision, open: () => arrived.open() });
      return within(arrived.promise, `revision ${revision}`);
    },
  };
}

describe("host relay against the real sidecar", () => {
  it("host-sourced topic: one host getSnapshot serves every window; bursts coalesce", async () => {
    const sidecar = startSidecar();
    let state: Snapshot<{ n: number }> = { revision: "1", data: { n: 1 } };
    let hostFetches = 0;
    const host = createSidecarHost({
      link: sidecar.link,
      getSnapshot: async () => {
        hostFetches++;
        return state;
      },
    });
    const hostClient = await within(host.connect(), "host connect");
    const windows = await Promise.all([openWindow(host), openWindow(host), openWindow(host)]);
    const appliers = windows.map(() => latestApplier());
    const syncs = windows.map((window, i) =>
      createRevisionSync({
        topic: "settings",
        source: "host",
        connection: window.client,
        applier: appliers[i] as ReturnType<typeof latestApplier>,
      }),
    );
    await within(Promise.all(syncs.map((sync) => sync.start())), "every window started");
    expect(appliers.map((a) => a.latest)).toEqual(["1", "1", "1"]);

    const fetchesBefore = hostFetches;
    for (let revision = 2; revision <= 1000; revision++) {
      state = { revision: String(revision), data: { n: revision } };
      hostClient.invalidate({ topic: "settings", revision: String(revision) });
    }
    await within(Promise.all(appliers.map((a) => a.reached("1000"))), "every window at 1000");
    // Shared and deduplicated per topic: a burst costs a few fetches, not one per event or window.
    expect(hostFetches - fetchesBefore).toBeLessThan(50);
    host.close();
    await sidecar.finish();
  });

  it("closing a window's port closes its channels in the sidecar; other windows keep theirs", async () => {
    const sidecar = startSidecar();
    const host = createSidecarHost({ link: sidecar.link });
    const hostClient = await within(host.connect(), "host connect");
    await hostClient.set("app-config", { theme: "dark" });
    const left = await openWindow(host);
    const right = await openWindow(host);
    const leftApplier = latestApplier();
    const rightApplier = latestApplier();
    await createRevisionSync({
      topic: "app-config",
      channel: "left",
      connection: left.client,
      applier: leftApplier,
    }).start();
    await createRevisionSync({
      topic: "app-config",
      channel: "right",
      connection: right.client,
      applier: rightApplier,
    }).start();
    expect((await hostClient.listChannels()).map((c) => c.channel).sort()).toEqual(["left", "right"]);

    right.close(); // the window is gone: no stop(), no goodbye
    await until(() => countFromSidecar(sidecar.transcript, "apply") >= 2, "both first applies");
    await until(() => answered(sidecar.transcript, "channel.close"), "the relay's channel.close answered");
    await hostClient.set("app-config", { theme: "light" });
    await leftApplier.reached("2");
    expect((await hostClient.listChannels()).map((c) => c.channel)).toEqual(["left"]);
    expect(rightApplier.latest).toBe("1");
    host.close();
    await sidecar.finish();
  });

  it("channel-sourced window through the relay: its provider answers and its events reach its channel", async () => {
    const sidecar = startSidecar();
    const host = createSidecarHost({ link: sidecar.link });
    const hostClient = await within(host.connect(), "host connect");
    const window = await openWindow(host);
    let current: Snapshot<string> = { revision: "1", data: "one" };
    const { emit, subscriber } = manualSubscriber();
    const applier = latestApplier();
    const sync = createRevisionSync({
      topic: "draft",
      connection: window.client,
      subscriber,
      provider: { getSnapshot: async () => current },
      applier,
    });
    await within(sync.start(), "start");
    current = { revision: "2", data: "two" };
    emit({ topic: "draft", revision: "2" });
    await applier.reached("2");
    sync.stop();
    await until(() => answered(sidecar.transcript, "channel.close"), "channel.close answered");
    expect(await hostClient.listChannels()).toEqual([]);
    host.close();
    await sidecar.finish();
  });
});
