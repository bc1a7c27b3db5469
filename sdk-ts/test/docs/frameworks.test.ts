import { readdirSync, readFileSync } from "node:fs";
import { createPinia, setActivePinia } from "pinia";
import { get } from "svelte/store";
import { snapshot } from "valtio/vanilla";
import { afterEach, describe, expect, it } from "vitest";
import { connect, type StateSyncClient } from "../../src/client.js";
import { until, within } from "../helpers/async.js";
import { disposeAll, startSidecar } from "../integration/harness.js";
import { useSyncedSettings } from "./frameworks/pinia.js";
import { syncSession } from "./frameworks/redux.js";
import { syncTodos } from "./frameworks/svelte.js";
import { syncPlayer } from "./frameworks/valtio.js";
import { syncSettings } from "./frameworks/vue.js";
import { syncCounter } from "./frameworks/zustand.js";

// docs/frameworks.md quotes the files of ./frameworks byte for byte; here each one runs
// against the real sidecar binary and its framework's real package: the topic's state
// arrives before start() resolves, later writes follow, and what the options keep local
// stays local.

const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");
const guide = read("../../../docs/frameworks.md");
const examples = Object.fromEntries(
  readdirSync(new URL("./frameworks/", import.meta.url)).map((name) => [name, read(`./frameworks/${name}`)]),
);

describe("docs/frameworks.md", () => {
  it("quotes every example file verbatim, and shows no TypeScript that is not one", () => {
    const quoted = [...guide.matchAll(/^```tsx?\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? "");
    for (const [name, source] of Object.entries(examples)) {
      expect(quoted, `test/docs/frameworks/${name} is quoted`).toContain(source);
    }
    for (const block of quoted) {
      expect(Object.values(examples), `a TypeScript block that is not an example file:\n${block}`).toContain(block);
    }
    expect(Object.keys(examples).sort()).toEqual(
      ["pinia.ts", "react.tsx", "redux.ts", "svelte.ts", "valtio.ts", "vue.ts", "zustand.ts"].sort(),
    );
  });
});

afterEach(disposeAll);

/** Runs one example against a fresh sidecar: `client` writes the topic, as another window would. */
async function withSidecar(run: (client: StateSyncClient) => Promise<void>) {
  const sidecar = startSidecar();
  const client = await within(connect(sidecar.link), "connect");
  await run(client);
  await client.close();
  await sidecar.finish();
}

describe("the examples, against the real sidecar", () => {
  it("vue: a reactive object follows the topic; the omitted draft stays local", () =>
    withSidecar(async (client) => {
      await client.set("settings", { theme: "dark", fontSize: 14, draft: "theirs" });
      const { settings, sync } = await syncSettings(client);
      expect({ ...settings }).toEqual({ theme: "dark", fontSize: 14, draft: "" });
      settings.draft = "mine";
      await client.set("settings", { theme: "light", fontSize: 16 });
      await until(() => settings.theme === "light", "the write to reach the reactive object");
      expect({ ...settings }).toEqual({ theme: "light", fontSize: 16, draft: "mine" });
      sync.stop();
    }));

  it("pinia: the store's state is the topic's, getters follow", () =>
    withSidecar(async (client) => {
      setActivePinia(createPinia());
      await client.set("settings", { theme: "dark", fontSize: 14 });
      const { settings, sync } = await useSyncedSettings(client);
      expect(settings.isDark).toBe(true);
      await client.set("settings", { theme: "light" });
      await until(() => settings.theme === "light", "the write to reach the store");
      expect(settings.$state).toEqual({ theme: "light" }); // replace: fontSize is gone
      expect(settings.isDark).toBe(false);
      sync.stop();
    }));

  it("zustand: only count is synced; step and the action survive every snapshot", () =>
    withSidecar(async (client) => {
      await client.set("counter", { count: 5, step: 100 });
      const { counter, sync } = await syncCounter(client);
      expect(counter.getState()).toMatchObject({ count: 5, step: 1 });
      await client.set("counter", { count: 10 });
      await until(() => counter.getState().count === 10, "the write to reach the store");
      counter.getState().increment();
      expect(counter.getState()).toMatchObject({ count: 11, step: 1 });
      sync.stop();
    }));

  it("svelte: patch sets the topic's items and keeps the window's filter", () =>
    withSidecar(async (client) => {
      await client.set("todos", { items: ["write docs"] });
      const { todos, sync } = await syncTodos(client);
      expect(get(todos)).toEqual({ items: ["write docs"], filter: "all" });
      todos.update((value) => ({ ...value, filter: "open" }));
      await client.set("todos", { items: ["write docs", "ship"] });
      await until(() => get(todos).items.length === 2, "the write to reach the store");
      expect(get(todos)).toEqual({ items: ["write docs", "ship"], filter: "open" });
      sync.stop();
    }));

  it("valtio: the proxy follows the topic but keeps its own volume and its action", () =>
    withSidecar(async (client) => {
      await client.set("player", { track: "intro", position: 0, volume: 1 });
      const { player, sync } = await syncPlayer(client);
      expect(snapshot(player)).toMatchObject({ track: "intro", position: 0, volume: 0.5 });
      await client.set("player", { track: "intro", position: 42 });
      await until(() => player.position === 42, "the write to reach the proxy");
      player.mute();
      expect(snapshot(player)).toMatchObject({ track: "intro", position: 42, volume: 0 });
      sync.stop();
    }));

  it("redux: the session slice is the topic's state", () =>
    withSidecar(async (client) => {
      await client.set("session", { user: "ada", lastSeen: 1 });
      const { store, sync } = await syncSession(client);
      expect(store.getState()).toEqual({ session: { user: "ada", lastSeen: 1 } });
      await client.set("session", { user: "ada", lastSeen: 2 });
      await until(() => store.getState().session.lastSeen === 2, "the write to reach the store");
      sync.stop();
    }));
});
