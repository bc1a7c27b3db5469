import { Window } from "happy-dom";
import { act, createElement, StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { afterAll, afterEach, expect, it } from "vitest";
import { connect, type StateSyncClient } from "../../src/client.js";
import { until, within } from "../helpers/async.js";
import { disposeAll, startSidecar } from "../integration/harness.js";
import { Theme } from "./frameworks/react.js";

// docs/frameworks.md's React example (quoted there verbatim, checked by frameworks.test.ts),
// rendered by react-dom under StrictMode against the real sidecar binary.

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
// A happy-dom page for react-dom, in a Node environment (happy-dom's own environment
// replaces URL with one that resolves file: paths against its page).
const page = new Window();
Object.assign(globalThis, { window: page, document: page.document });

afterEach(disposeAll);
afterAll(() => page.close());

/** Waits, bounded, until the sidecar lists `count` channels of the topic. */
async function channelsOpen(client: StateSyncClient, count: number) {
  let open = -1;
  for (let attempt = 0; attempt < 200 && open !== count; attempt++) {
    open = (await client.listChannels()).filter((c) => c.topic === "settings").length;
  }
  expect(open, "channels of the topic open in the sidecar").toBe(count);
}

it("react: the component renders the topic's theme, then each write, with one channel open", async () => {
  const sidecar = startSidecar();
  const client = await within(connect(sidecar.link), "connect");
  await client.set("settings", { theme: "dark", fontSize: 20 });
  const container = document.createElement("div");
  const root = createRoot(container);
  await act(async () => root.render(createElement(StrictMode, null, createElement(Theme, { connection: client }))));

  const rendered = async (theme: string) =>
    within(
      act(() => until(() => container.textContent === `theme: ${theme}`, `the component to render ${theme}`)),
      `theme ${theme}`,
    );
  await rendered("dark");
  expect(container.innerHTML).toBe('<p class="dark">theme: dark</p>');
  await act(async () => {
    await client.set("settings", { theme: "solarized", fontSize: 20 });
  });
  await rendered("solarized");
  // StrictMode's rehearsal closed its own channel; unmounting closes the other.
  await channelsOpen(client, 1);
  await act(async () => root.unmount());
  await channelsOpen(client, 0);
  await client.close();
  await sidecar.finish();
});
