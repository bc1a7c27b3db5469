// @vitest-environment happy-dom
import { act, createElement, StrictMode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, describe, expect, it } from "vitest";
import { useRevisionSync } from "../../src/appliers/react.js";
import type { StateSyncClient } from "../../src/client.js";
import { ErrorCodes, type RpcError } from "../../src/errors.js";
import { until } from "../helpers/async.js";
import { connectToFake, type FakeSidecar, type Received } from "../helpers/fake-sidecar.js";

// A real React DOM (react-dom in happy-dom): what the user's component renders as the
// sidecar opens channels and applies snapshots, StrictMode's rehearsal included.

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

interface Settings {
  theme: string;
  draft: string;
}

function SettingsView({
  connection,
  onStartError,
}: {
  connection: StateSyncClient;
  onStartError?: (e: unknown) => void;
}) {
  const settings = useRevisionSync<Settings>({
    connection,
    topic: "settings",
    initialState: { theme: "light", draft: "local" },
    omit: ["draft"],
    ...(onStartError === undefined ? {} : { onStartError }),
  });
  return createElement("p", null, `${settings.theme}/${settings.draft}`);
}

let root: Root | undefined;
let container: HTMLElement;

async function mount(connection: StateSyncClient, strict: boolean, onStartError?: (error: unknown) => void) {
  container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
  const view = createElement(SettingsView, { connection, ...(onStartError === undefined ? {} : { onStartError }) });
  await act(async () => root?.render(strict ? createElement(StrictMode, null, view) : view));
}

afterEach(async () => {
  await act(async () => root?.unmount());
  root = undefined;
  container?.remove();
});

const channelOf = (message: Received) => (message.params as { channel: string }).channel;

async function apply(sidecar: FakeSidecar, channel: string, revision: string, data: unknown) {
  let answer: Received | undefined;
  await act(async () => {
    answer = await sidecar.call("apply", { channel, topic: "settings", revision, data });
  });
  return answer;
}

describe("useRevisionSync (real react-dom)", () => {
  it("under StrictMode, stops the rehearsal's channel, syncs through the second, renders each snapshot", async () => {
    const { client, sidecar } = await connectToFake();
    await mount(client, true);
    expect(container.textContent).toBe("light/local");

    // StrictMode runs the effect, its cleanup, and the effect again.
    const first = await sidecar.next("channel.open", "the rehearsal's channel.open");
    const close = await sidecar.next("channel.close", "the rehearsal's channel.close");
    const second = await sidecar.next("channel.open", "the second channel.open");
    expect(channelOf(close)).toBe(channelOf(first));
    expect(channelOf(second)).not.toBe(channelOf(first));
    expect((first.params as { topic: string }).topic).toBe("settings");
    sidecar.respond(close.id ?? null, { channel: channelOf(first), localRevision: "0" });
    sidecar.respondError(first.id ?? null, ErrorCodes.UnknownChannel, "closed while opening");

    // An apply for the stopped channel is refused and never reaches the component.
    const stale = await apply(sidecar, channelOf(first), "9", { theme: "stale" });
    expect(stale?.error?.code).toBe(ErrorCodes.UnknownChannel);
    expect(container.textContent).toBe("light/local");

    const applied = await apply(sidecar, channelOf(second), "2", { theme: "dark", draft: "remote" });
    expect(applied?.error).toBeUndefined();
    sidecar.respond(second.id ?? null, { channel: channelOf(second), topic: "settings", localRevision: "2" });
    expect(container.textContent).toBe("dark/local"); // draft is omitted: it stays local

    await apply(sidecar, channelOf(second), "3", { theme: "blue" });
    expect(container.textContent).toBe("blue/local");

    await act(async () => root?.unmount());
    root = undefined;
    const unmountClose = await sidecar.next("channel.close", "the close on unmount");
    expect(channelOf(unmountClose)).toBe(channelOf(second));
    const late = await apply(sidecar, channelOf(second), "4", { theme: "late" });
    expect(late?.error?.code).toBe(ErrorCodes.UnknownChannel);
    expect(sidecar.received.filter((m) => m.method === "channel.open")).toHaveLength(2);
  });

  it("without StrictMode opens one channel, and re-renders once per snapshot", async () => {
    const { client, sidecar } = await connectToFake();
    await mount(client, false);
    const open = await sidecar.next("channel.open");
    await apply(sidecar, channelOf(open), "5", { theme: "dark" });
    sidecar.respond(open.id ?? null, { channel: channelOf(open), topic: "settings", localRevision: "5" });
    expect(container.textContent).toBe("dark/local");
    expect(sidecar.received.filter((m) => m.method === "channel.open")).toHaveLength(1);
    expect(sidecar.received.filter((m) => m.method === "channel.close")).toHaveLength(0);
  });

  it("hands a failed start to onStartError, and keeps rendering the initial state", async () => {
    const { client, sidecar } = await connectToFake();
    const failures: unknown[] = [];
    await mount(client, false, (error) => failures.push(error));
    const open = await sidecar.next("channel.open");
    await act(async () => {
      sidecar.respondError(open.id ?? null, ErrorCodes.InvalidParams, "topic refused");
      await until(() => failures.length > 0, "onStartError to be called");
    });
    expect(failures).toHaveLength(1);
    expect((failures[0] as RpcError).code).toBe(ErrorCodes.InvalidParams);
    expect(container.textContent).toBe("light/local");
  });
});
