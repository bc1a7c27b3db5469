import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/index.ts",
    node: "src/node.ts",
    tauri: "src/tauri.ts",
    "message-port": "src/message-port.ts",
    memory: "src/memory.ts",
    relay: "src/relay.ts",
    pinia: "src/pinia.ts",
    zustand: "src/zustand.ts",
    vue: "src/vue.ts",
    svelte: "src/svelte.ts",
    valtio: "src/valtio.ts",
    react: "src/react.ts",
    redux: "src/redux.ts",
  },
  // ESM (.js, .d.ts) for import, CommonJS (.cjs, .d.cts) for require: an Electron main
  // process compiled to CommonJS cannot load an ESM-only package.
  format: ["esm", "cjs"],
  dts: true,
  // Shared chunks keep one RpcError class across subpaths, so instanceof works; in both
  // formats (tsup splits CommonJS only when asked).
  splitting: true,
  clean: true,
  target: "es2022",
  platform: "neutral",
  external: ["@tauri-apps/plugin-shell", "@tauri-apps/api", "pinia", "vue", "zustand", /^node:/],
});
