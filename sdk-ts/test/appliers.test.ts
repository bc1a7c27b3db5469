import { createPinia, defineStore, setActivePinia } from "pinia";
import { describe, expect, it } from "vitest";
import { ref } from "vue";
import { createStore } from "zustand/vanilla";
import { piniaApplier } from "../src/appliers/pinia.js";
import { zustandApplier } from "../src/appliers/zustand.js";

interface Settings {
  theme: string;
  fontSize?: number;
  panels: { left: boolean; right?: boolean };
}

describe("piniaApplier (real pinia)", () => {
  it("replaces an options store's state in one $patch: no stale keys, nested objects replaced", async () => {
    setActivePinia(createPinia());
    const useSettings = defineStore("settings", {
      state: (): Settings => ({ theme: "light", fontSize: 12, panels: { left: true, right: true } }),
      getters: { isDark: (state) => state.theme === "dark" },
    });
    const store = useSettings();
    const mutations: string[] = [];
    store.$subscribe((mutation) => mutations.push(mutation.type), { flush: "sync" });

    await piniaApplier(store).apply({ revision: "2", data: { theme: "dark", panels: { left: false } } });

    expect(store.$state).toEqual({ theme: "dark", panels: { left: false } });
    expect("fontSize" in store.$state).toBe(false);
    expect(store.isDark).toBe(true); // getters follow
    expect(mutations).toEqual(["patch function"]);
  });

  it("works on a setup store", async () => {
    setActivePinia(createPinia());
    const useCounter = defineStore("counter", () => ({ count: ref(0), label: ref("zero") }));
    const store = useCounter();
    await piniaApplier(store).apply({ revision: "1", data: { count: 5, label: "five" } });
    expect(store.count).toBe(5);
    expect(store.label).toBe("five");
  });

  it("a deleted topic (state.delete) takes the synced keys away in one $patch, the omitted ones stay", async () => {
    setActivePinia(createPinia());
    const useSettings = defineStore("deleted", { state: () => ({ theme: "dark", draft: "mine" }) });
    const store = useSettings();
    await piniaApplier(store, { omit: ["draft"] }).apply({ revision: "3", data: null, deleted: true });
    expect(store.$state).toEqual({ draft: "mine" });
  });
});

describe("zustandApplier (real zustand)", () => {
  it("replaces the state with setState(data, true), telling subscribers once", async () => {
    const store = createStore<Settings>()(() => ({ theme: "light", fontSize: 12, panels: { left: true } }));
    const seen: Settings[] = [];
    store.subscribe((state) => seen.push(state));
    await zustandApplier(store).apply({ revision: "3", data: { theme: "dark", panels: { left: false } } });
    expect(store.getState()).toEqual({ theme: "dark", panels: { left: false } });
    expect(seen).toHaveLength(1);
  });
});
