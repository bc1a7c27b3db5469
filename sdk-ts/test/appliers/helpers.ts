import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compileModule } from "svelte/compiler";

const sdk = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Compiles a `.svelte.js` module (runes) with the real Svelte compiler and imports it. The
 * file sits under sdk-ts/node_modules so that `svelte/internal/client` resolves.
 */
export async function importRunesModule<M>(source: string): Promise<M> {
  const { js } = compileModule(source, { filename: "state.svelte.js", generate: "client" });
  mkdirSync(join(sdk, "node_modules", ".cache"), { recursive: true });
  const dir = mkdtempSync(join(sdk, "node_modules", ".cache", "runes-"));
  try {
    const file = join(dir, "state.svelte.mjs");
    writeFileSync(file, js.code);
    return (await import(/* @vite-ignore */ file)) as M;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
