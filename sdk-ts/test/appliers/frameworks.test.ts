import { combineReducers, legacy_createStore } from "redux";
import { writable } from "svelte/store";
import { proxy, snapshot, subscribe as subscribeValtio } from "valtio/vanilla";
import { describe, expect, it } from "vitest";
import { computed, nextTick, reactive, shallowRef, watch } from "vue";
import { createStore } from "zustand/vanilla";
import { APPLY_SNAPSHOT, type ReduxStoreLike, reduxApplier, revisionSyncReducer } from "../../src/appliers/redux.js";
import { svelteApplier } from "../../src/appliers/svelte.js";
import { valtioApplier } from "../../src/appliers/valtio.js";
import { vueApplier } from "../../src/appliers/vue.js";
import { zustandApplier } from "../../src/appliers/zustand.js";
import { until } from "../helpers/async.js";
import { importRunesModule } from "./helpers.js";

// What each framework's users see: one notification per applied snapshot, derived values
// that follow, and the framework's own features left working.

// reduxApplier for the "settings" topic of store, "draft" omitted, with a copy of every
// action it dispatches kept in dispatched.
function recordingSettingsApplier(store: ReduxStoreLike) {
  const dispatched: unknown[] = [];
  const applier = reduxApplier<{ draft: string }>(
    {
      dispatch: (action) => {
        dispatched.push(structuredClone(action));
        return store.dispatch(action);
      },
    },
    "settings",
    { omit: ["draft"] },
  );
  return { applier, dispatched };
}

describe("zustandApplier (real zustand)", () => {
  it("keeps the store's actions working and tells subscribers once per snapshot", async () => {
    const store = createStore<{ count: number; label: string; increment(): void }>()((set) => ({
      count: 0,
      label: "zero",
      increment: () => set((s) => ({ count: s.count + 1 })),
    }));
    let told = 0;
    store.subscribe(() => told++);
    await zustandApplier(store).apply({ revision: "2", data: { count: 5 } });
    expect(told).toBe(1);
    expect("label" in store.getState()).toBe(false); // replace: no stale keys
    store.getState().increment();
    expect(store.getState().count).toBe(6);
  });
});

describe("vueApplier (real vue)", () => {
  it("changes a reactive object in place: one watcher run, computed values follow", async () => {
    const state = reactive({ theme: "light", fontSize: 12 });
    const dark = computed(() => state.theme === "dark");
    let runs = 0;
    watch(state, () => runs++, { deep: true });
    await vueApplier(state).apply({ revision: "2", data: { theme: "dark", fontSize: 14 } });
    await nextTick();
    expect(runs).toBe(1);
    expect(dark.value).toBe(true);
  });

  it("gives a shallowRef a new value, so its watchers see the change", async () => {
    const state = shallowRef({ theme: "light", draft: "x" });
    const seen: unknown[] = [];
    watch(state, (value) => seen.push(value), { flush: "sync" });
    await vueApplier(state, { omit: ["draft"] }).apply({ revision: "2", data: { theme: "dark" } });
    expect(seen).toEqual([{ theme: "dark", draft: "x" }]);
  });
});

describe("svelteApplier (real svelte)", () => {
  it("updates a writable store once per snapshot", async () => {
    const store = writable({ theme: "light", fontSize: 12 });
    const seen: unknown[] = [];
    store.subscribe((value) => seen.push(value));
    await svelteApplier(store, { mode: "patch" }).apply({ revision: "2", data: { theme: "dark" } });
    expect(seen).toEqual([
      { theme: "light", fontSize: 12 },
      { theme: "dark", fontSize: 12 },
    ]);
  });

  it("drives $derived through a $state object (Svelte 5 runes, compiled by the real compiler)", async () => {
    const { make } = await importRunesModule<{
      make(): { state: { items: string[]; filter: string }; visible(): string[] };
    }>(
      `export function make() {
        const state = $state({ items: ["a", "b"], filter: "" });
        const visible = $derived(state.items.filter((item) => item.includes(state.filter)));
        return { state, visible: () => visible };
      }`,
    );
    const { state, visible } = make();
    expect(visible()).toEqual(["a", "b"]);
    const { svelteStateApplier } = await import("../../src/appliers/svelte.js");
    await svelteStateApplier(state).apply({ revision: "2", data: { items: ["ab", "b", "cb"], filter: "b" } });
    expect(visible()).toEqual(["ab", "b", "cb"]);
    await svelteStateApplier(state, { pick: ["filter"] }).apply({ revision: "3", data: { filter: "c", items: [] } });
    expect(visible()).toEqual(["cb"]);
  });
});

describe("valtioApplier (real valtio)", () => {
  it("mutates the proxy in place: subscribers hear one batched change", async () => {
    const state = proxy({ theme: "light", fontSize: 12 });
    const seen: unknown[] = [];
    subscribeValtio(state, () => seen.push(snapshot(state)));
    await valtioApplier(state).apply({ revision: "2", data: { theme: "dark" } });
    await until(() => seen.length > 0, "valtio to notify"); // it batches a tick's changes
    expect(seen).toEqual([{ theme: "dark" }]); // one notification, after both changes
  });
});

describe("reduxApplier and revisionSyncReducer (real redux)", () => {
  const initialSettings = { theme: "light", draft: "" };
  const settings = revisionSyncReducer(
    "settings",
    (state: typeof initialSettings = initialSettings, action: { type: string; draft?: string }) =>
      action.type === "typed" ? { ...state, draft: action.draft ?? "" } : state,
  );
  const other = revisionSyncReducer("other", (state: { n: number } = { n: 0 }) => state);

  it("dispatches one serializable action per snapshot; only the reducer of its topic takes it", async () => {
    const store = legacy_createStore(combineReducers({ settings, other }));
    const { applier, dispatched } = recordingSettingsApplier(store);
    let told = 0;
    store.subscribe(() => told++);
    store.dispatch({ type: "typed", draft: "hello" });
    await applier.apply({ revision: "4", data: { theme: "dark", draft: "remote" } });
    expect(told).toBe(2);
    expect(store.getState()).toEqual({ settings: { theme: "dark", draft: "hello" }, other: { n: 0 } });
    expect(dispatched).toEqual([
      {
        type: APPLY_SNAPSHOT,
        payload: { topic: "settings", revision: "4", data: { theme: "dark", draft: "remote" } },
        meta: { mode: "replace", omit: ["draft"] },
      },
    ]);
  });

  it("folds a snapshot that comes before any other action into the reducer's initial state", () => {
    const state = settings(undefined, {
      type: APPLY_SNAPSHOT,
      payload: { topic: "settings", revision: "1", data: { theme: "dark" } },
      meta: { mode: "patch" },
    });
    expect(state).toEqual({ theme: "dark", draft: "" });
  });
});

// state.delete: the window gets `deleted: true` and data null (docs/protocol.md). Stores
// folded by key drop the synced keys (mode "replace"; actions and local keys stay) or keep
// everything (mode "patch"); stores that hold one value hold null.
describe("a deleted topic, in every binding", () => {
  const deletion = { revision: "3", data: null, deleted: true as const };

  it("Zustand: the synced keys go, the actions and omitted keys stay; patch mode changes nothing", async () => {
    const store = createStore<{ theme?: string; draft: string; reset(): void }>()(() => ({
      theme: "dark",
      draft: "mine",
      reset: () => {},
    }));
    await zustandApplier(store, { omit: ["draft"] }).apply(deletion);
    expect(Object.keys(store.getState()).sort()).toEqual(["draft", "reset"]);
    const patched = createStore<{ theme: string }>()(() => ({ theme: "dark" }));
    await zustandApplier(patched, { mode: "patch" }).apply(deletion);
    expect(patched.getState()).toEqual({ theme: "dark" });
  });

  it("Vue reactive, Valtio and Svelte runes lose the synced keys in place; a ref holds null", async () => {
    const vue = reactive<Record<string, unknown>>({ theme: "dark", size: 12 });
    await vueApplier(vue, { pick: ["theme"] }).apply(deletion);
    expect({ ...vue }).toEqual({ size: 12 });
    const ref = shallowRef<unknown>({ theme: "dark" });
    await vueApplier(ref).apply(deletion);
    expect(ref.value).toBeNull();
    const valtio = proxy<Record<string, unknown>>({ theme: "dark" });
    await valtioApplier(valtio).apply(deletion);
    expect(snapshot(valtio)).toEqual({});
    const { make } = await importRunesModule<{ make(): { state: Record<string, unknown> } }>(
      `export function make() {
        const state = $state({ theme: "dark" });
        return { state };
      }`,
    );
    const { state } = make();
    const { svelteStateApplier } = await import("../../src/appliers/svelte.js");
    await svelteStateApplier(state).apply(deletion);
    expect(Object.keys(state)).toEqual([]);
  });

  it("a Svelte writable and a Redux reducer hold null; with omit, only the synced keys go", async () => {
    const store = writable<unknown>({ theme: "dark" });
    await svelteApplier(store).apply(deletion);
    let value: unknown = "unset";
    store.subscribe((v) => {
      value = v;
    })();
    expect(value).toBeNull();
    const initial = { theme: "light", draft: "" };
    const reducer = revisionSyncReducer("settings", (state: typeof initial = initial) => state);
    const redux = legacy_createStore(combineReducers({ settings: reducer }));
    const { applier, dispatched } = recordingSettingsApplier(redux);
    await applier.apply(deletion);
    expect(redux.getState()).toEqual({ settings: { draft: "" } });
    expect(dispatched).toEqual([
      {
        type: APPLY_SNAPSHOT,
        payload: { topic: "settings", revision: "3", data: null, deleted: true },
        meta: { mode: "replace", omit: ["draft"] },
      },
    ]);
    const plain = revisionSyncReducer("settings", (state: typeof initial = initial) => state);
    expect(
      plain(initial, {
        type: APPLY_SNAPSHOT,
        payload: { topic: "settings", revision: "3", data: null, deleted: true },
        meta: { mode: "replace" },
      }),
    ).toBeNull();
  });
});
