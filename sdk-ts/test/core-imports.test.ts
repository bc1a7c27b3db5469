import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The core must run anywhere (webview, worker, Node): it imports only its own modules.
// tsconfig.core.json also compiles it with neither DOM nor Node types.
const src = fileURLToPath(new URL("../src/", import.meta.url));
const platformFiles = new Set([
  "node.ts",
  "tauri.ts",
  "pinia.ts",
  "zustand.ts",
  "vue.ts",
  "svelte.ts",
  "valtio.ts",
  "react.ts",
  "redux.ts",
]);
const coreFiles = [
  ...readdirSync(src).filter((name) => name.endsWith(".ts") && !platformFiles.has(name)),
  "links/memory.ts",
  "links/message-port.ts",
];

describe("platform-free core", () => {
  for (const file of coreFiles) {
    it(`${file} imports nothing outside the SDK`, () => {
      const text = readFileSync(src + file, "utf8");
      // Not a word inside a string: json-patch.ts names its "from" member.
      const specifiers = [...text.matchAll(/(?<![\w"'`])(?:from|import)\s*\(?\s*["']([^"'\s]+)["']/g)].map((m) => m[1]);
      const foreign = specifiers.filter((specifier) => !specifier?.startsWith("."));
      expect(foreign, `${file} imports ${foreign.join(", ")}`).toEqual([]);
    });
  }

  it("covers the entry points it should", () => {
    expect(coreFiles).toEqual(expect.arrayContaining(["index.ts", "relay.ts", "memory.ts", "message-port.ts"]));
  });
});
