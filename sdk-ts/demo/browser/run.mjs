// Runs main.ts under plain Node: esbuild (the SDK's bundler) compiles it and the SDK
// sources it imports into one ES module in node_modules/.cache, then Node imports it.
// Usage (from sdk-ts/): node demo/browser/run.mjs [--port N] [--windows N] [--topic NAME] [--trace]
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const demoDir = dirname(fileURLToPath(import.meta.url));
const outDir = join(demoDir, "..", "..", "node_modules", ".cache", "state-sync-browser-demo");
mkdirSync(outDir, { recursive: true });
const outfile = join(outDir, "main.mjs");
await build({
  entryPoints: [join(demoDir, "main.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external", // ws and esbuild resolve from sdk-ts/node_modules
  outfile,
  logLevel: "warning",
});
process.env.STATESYNC_DEMO_DIR ??= demoDir;
process.env.STATESYNC_SIDECAR ??= join(demoDir, "..", "..", "..", "bin", "statesync-sidecar");
await import(pathToFileURL(outfile).href);
