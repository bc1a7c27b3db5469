import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = fileURLToPath(new URL("./src/", import.meta.url));

export default defineConfig({
  resolve: {
    // The README's snippets import the package by name; tests run them against src/.
    alias: [
      { find: /^@state-sync\/sdk$/, replacement: `${src}index.ts` },
      { find: /^@state-sync\/sdk\/(.+)$/, replacement: `${src}$1.ts` },
    ],
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
