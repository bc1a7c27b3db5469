import { createPinia, defineStore, setActivePinia } from "pinia";
import { combineReducers, legacy_createStore } from "redux";
import { get as readStore, writable } from "svelte/store";
import { proxy } from "valtio/vanilla";
import { describe, expect, it } from "vitest";
import { reactive, ref } from "vue";
import { createStore } from "zustand/vanilla";
import type { ApplyOptions } from "../../src/appliers/options.js";
import { piniaApplier } from "../../src/appliers/pinia.js";
import { reduxApplier, revisionSyncReducer } from "../../src/appliers/redux.js";
import { svelteApplier, svelteStateApplier } from "../../src/appliers/svelte.js";
import { valtioApplier } from "../../src/appliers/valtio.js";
import { vueApplier } from "../../src/appliers/vue.js";
import { zustandApplier } from "../../src/appliers/zustand.js";
import type { SnapshotApplier } from "../../src/revision-sync.js";
import { importRunesModule } from "./helpers.js";

// One table, every applier: the options mean the same thing whatever the framework. The
// expected states are written from the ApplyOptions contract, not from the code.

interface Settings {
  theme: string;
  fontSize?: number;
  draft: string;
  panels: { left: boolean; right?: boolean };
}
const initial = (): Settings => ({ theme: "light", fontSize: 12, draft: "x", panels: { left: true, right: true } });
const snapshot = { theme: "dark", panels: { left: false } };

const cases: { options: ApplyOptions<Settings> | undefined; want: Settings | Omit<Settings, "draft"> }[] = [
  { options: undefined, want: { theme: "dark", panels: { left: false } } },
  { options: { mode: "replace" }, want: { theme: "dark", panels: { left: false } } },
  { options: { mode: "patch" }, want: { theme: "dark", fontSize: 12, draft: "x", panels: { left: false } } },
  { options: { omit: ["draft"] }, want: { theme: "dark", draft: "x", panels: { left: false } } },
  {
    options: { pick: ["theme", "fontSize"] },
    want: { theme: "dark", draft: "x", panels: { left: true, right: true } },
  },
  {
    options: { mode: "patch", pick: ["panels"] },
    want: { theme: "light", fontSize: 12, draft: "x", panels: { left: false } },
  },
  {
    options: { mode: "patch", omit: ["theme"] },
    want: { theme: "light", fontSize: 12, draft: "x", panels: { left: false } },
  },
];

interface Target {
  applier: SnapshotApplier<unknown>;
  /** The state as plain JSON (functions dropped). */
  read(): unknown;
  /** Whether the store's action is still there and works; undefined where state holds none. */
  action?(): boolean;
}

type Runes = { make(initial: object): { state: Record<string, unknown>; json(): string } };

const frameworks: Record<string, (options: ApplyOptions<Settings> | undefined) => Promise<Target> | Target> = {
  pinia(options) {
    setActivePinia(createPinia());
    const store = defineStore("settings", {
      state: initial,
      actions: {
        bigger() {
          this.fontSize = (this.fontSize ?? 0) + 1;
        },
      },
    })();
    return {
      applier: piniaApplier(store, options),
      read: () => plain(store.$state),
      action: () => typeof store.bigger === "function",
    };
  },
  zustand(options) {
    const store = createStore<Settings & { bigger(): void }>()((set) => ({
      ...initial(),
      bigger: () => set((s) => ({ fontSize: (s.fontSize ?? 0) + 1 })),
    }));
    return {
      applier: zustandApplier(store, options),
      read: () => plain(store.getState()),
      action: () => {
        const before = store.getState().fontSize ?? 0;
        store.getState().bigger();
        return store.getState().fontSize === before + 1;
      },
    };
  },
  "vue reactive"(options) {
    const state = reactive({ ...initial(), bigger: () => undefined });
    return {
      applier: vueApplier(state, options),
      read: () => plain(state),
      action: () => typeof state.bigger === "function",
    };
  },
  "vue ref"(options) {
    const state = ref(initial());
    return { applier: vueApplier(state, options), read: () => plain(state.value) };
  },
  "svelte writable"(options) {
    const store = writable(initial());
    return { applier: svelteApplier(store, options), read: () => plain(readStore(store)) };
  },
  async "svelte $state"(options) {
    const { make } = await importRunesModule<Runes>(
      "export function make(initial) { const state = $state(initial); const json = $derived(JSON.stringify(state)); return { state, json: () => json }; }",
    );
    const { state, json } = make({ ...initial(), bigger: () => undefined });
    return {
      applier: svelteStateApplier(state, options),
      read: () => JSON.parse(json()), // what a $derived sees
      action: () => typeof state.bigger === "function",
    };
  },
  valtio(options) {
    const state = proxy({ ...initial(), bigger: () => undefined });
    return {
      applier: valtioApplier(state, options),
      read: () => plain(state),
      action: () => typeof state.bigger === "function",
    };
  },
  redux(options) {
    const store = legacy_createStore(
      combineReducers({ settings: revisionSyncReducer("settings", (state: Settings = initial()) => state) }),
    );
    return { applier: reduxApplier<Settings>(store, "settings", options), read: () => store.getState().settings };
  },
};

function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

describe.each(Object.entries(frameworks))("%s applier", (_name, make) => {
  it.each(cases)("options $options fold the snapshot as the contract says", async ({ options, want }) => {
    const target = await make(options);
    await target.applier.apply({ revision: "2", data: snapshot });
    expect(target.read()).toEqual(want);
    if (target.action !== undefined) expect(target.action(), "the store's action survives").toBe(true);
  });

  it("applies one snapshot after another: the later one wins", async () => {
    const target = await make({ omit: ["draft"] });
    await target.applier.apply({ revision: "2", data: snapshot });
    await target.applier.apply({ revision: "3", data: { theme: "blue", fontSize: 20, panels: { left: true } } });
    expect(target.read()).toEqual({ theme: "blue", fontSize: 20, draft: "x", panels: { left: true } });
  });

  it("refuses pick with omit, and an unknown mode, when the applier is made", async () => {
    const both = { pick: ["theme"], omit: ["draft"] } as unknown as ApplyOptions<Settings>;
    await expect(async () => make(both)).rejects.toThrow(/pick and omit are both given/);
    const merge = { mode: "merge" } as unknown as ApplyOptions<Settings>;
    await expect(async () => make(merge)).rejects.toThrow(/mode "merge" is not "replace" or "patch"/);
  });

  it("refuses, naming the revision, a snapshot that is not an object when keys are needed", async () => {
    const target = await make({ mode: "patch" });
    await expect(async () => target.applier.apply({ revision: "7", data: [1, 2] })).rejects.toThrow(
      /snapshot 7: data is an array, not an object/,
    );
    expect(target.read(), "the state is untouched").toEqual(plain(initial()));
  });
});

describe("value stores (vue ref, svelte writable, redux) in plain replace mode", () => {
  it("take a snapshot that is not an object as the new state", async () => {
    const list = ref<unknown>([1]);
    await vueApplier(list).apply({ revision: "2", data: [1, 2] });
    expect(list.value).toEqual([1, 2]);
    const count = writable<unknown>(0);
    await svelteApplier(count).apply({ revision: "2", data: 5 });
    expect(readStore(count)).toBe(5);
    const store = legacy_createStore(revisionSyncReducer("n", (state: unknown = null) => state));
    await reduxApplier(store, "n").apply({ revision: "2", data: "text" });
    expect(store.getState()).toBe("text");
  });
});
