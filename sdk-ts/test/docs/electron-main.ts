// main.ts: the Electron main process
import { join } from "node:path";
import { createMessagePortLink } from "@state-sync/sdk/message-port";
import { createNodeLink } from "@state-sync/sdk/node";
import { createSidecarHost, type SidecarHost } from "@state-sync/sdk/relay";
import { app, BrowserWindow, MessageChannelMain } from "electron";

/** `task dist` target triples by Node's platform and arch. */
const triples: Record<string, string> = {
  "darwin-arm64": "aarch64-apple-darwin",
  "darwin-x64": "x86_64-apple-darwin",
  "linux-arm64": "aarch64-unknown-linux-gnu",
  "linux-x64": "x86_64-unknown-linux-gnu",
  "win32-arm64": "aarch64-pc-windows-msvc",
  "win32-x64": "x86_64-pc-windows-msvc",
};

/** The sidecar for this machine: in the resources folder when packaged, in ./binaries in development. */
export function sidecarPath(): string {
  const triple = triples[`${process.platform}-${process.arch}`];
  if (triple === undefined) throw new Error(`no statesync-sidecar build for ${process.platform}-${process.arch}`);
  const file = `statesync-sidecar-${triple}${process.platform === "win32" ? ".exe" : ""}`;
  return app.isPackaged ? join(process.resourcesPath, file) : join(app.getAppPath(), "binaries", file);
}

export function startSidecar(): SidecarHost {
  const sidecar = createNodeLink(sidecarPath(), {
    args: ["--store-file", join(app.getPath("userData"), "state.json")],
    onStderr: (line) => console.error("statesync-sidecar:", line), // piped: no console window on Windows
  });
  return createSidecarHost({ link: sidecar });
}

/** Gives every page the window loads its own port to the relay. */
export function connectWindow(host: SidecarHost, win: BrowserWindow): void {
  let detach: (() => void) | undefined;
  win.webContents.on("did-finish-load", () => {
    detach?.(); // a reload: the previous page's channels are closed
    const { port1, port2 } = new MessageChannelMain();
    detach = host.attachWindow(createMessagePortLink(port1));
    win.webContents.postMessage("state-sync:port", null, [port2]);
  });
  win.on("closed", () => detach?.()); // the window's channels are closed in the sidecar
}

void app.whenReady().then(() => {
  const host = startSidecar();
  const win = new BrowserWindow({ webPreferences: { preload: join(__dirname, "preload.js") } });
  connectWindow(host, win);
  void win.loadFile("index.html");
  app.on("before-quit", () => host.close()); // closes every channel, then shuts the sidecar down
});
