// `task demo:browser`: starts the demo host and prints the URLs to open, one tab per window.
// Options: --port N (default: a free port), --windows N (URLs printed, default 3),
// --topic NAME (default "demo"), --trace (the sidecar's wire traffic on stderr).
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { startDemoServer } from "./server.js";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    windows: { type: "string", default: "3" },
    topic: { type: "string", default: "demo" },
    trace: { type: "boolean", default: false },
  },
});

const sidecarPath =
  process.env.STATESYNC_SIDECAR ?? new URL("../../../bin/statesync-sidecar", import.meta.url).pathname;
if (!existsSync(sidecarPath)) {
  console.error(`statesync-sidecar not found at ${sidecarPath}: run \`task build\` (or set STATESYNC_SIDECAR)`);
  process.exit(1);
}

const server = await startDemoServer({
  sidecarPath,
  sidecarArgs: values.trace ? ["--trace"] : [],
  port: Number(values.port),
  onStderr: (line) => console.error(`sidecar: ${line}`),
  ...(process.env.STATESYNC_DEMO_DIR === undefined ? {} : { demoDir: process.env.STATESYNC_DEMO_DIR }),
});

const names = ["settings", "editor", "preview", "inspector", "console", "palette"];
console.log(`state-sync browser demo: a sidecar and its relay serve ${server.url} (loopback only).`);
console.log("Open each URL in its own tab or window; write in one, watch the others follow:");
for (let i = 0; i < Number(values.windows); i++) {
  const name = names[i] ?? `window-${i + 1}`;
  console.log(`  ${server.url}?name=${name}&topic=${encodeURIComponent(values.topic)}`);
}
console.log("Ctrl-C stops the host (closing every window's channels and the sidecar).");

const stop = () => {
  void server.close().then(() => process.exit(0));
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
