// The browser demo's host: what an Electron main process does, with browser tabs for
// windows. It spawns the real sidecar (node link), runs the SDK's relay, serves the demo
// page on 127.0.0.1 with the SDK bundled for the browser by esbuild (in memory, at start),
// and attaches every WebSocket that connects to /ws to the relay as one window.
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import type { JsonRpcMessage, Link } from "../../src/index.js";
import { createNodeLink, type NodeLink } from "../../src/node.js";
import { createSidecarHost, type SidecarHost } from "../../src/relay.js";

export interface DemoServerOptions {
  /** The statesync-sidecar binary. */
  sidecarPath: string;
  /** Extra sidecar flags, e.g. ["--trace"]. */
  sidecarArgs?: string[];
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Where index.html and page.ts are; this file's folder by default. */
  demoDir?: string;
  /** The sidecar's stderr, line by line; kept in `stderr` when absent. */
  onStderr?: (line: string) => void;
}

export interface DemoServer {
  /** The page, e.g. http://127.0.0.1:41234/; add ?name=…&topic=… per window. */
  readonly url: string;
  readonly host: SidecarHost;
  readonly sidecar: NodeLink;
  /** WebSockets (windows) connected now. */
  readonly windows: () => number;
  readonly stderr: string[];
  /** Closes every window's socket, the relay (closing their channels) and the sidecar; resolves once it exited. */
  close(): Promise<void>;
}

const here = fileURLToPath(new URL(".", import.meta.url));

/** Bundles page.ts (and the SDK core it imports) into one browser ES module. */
export async function bundlePage(demoDir = here): Promise<string> {
  const result = await build({
    entryPoints: [`${demoDir}/page.ts`],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  const output = result.outputFiles[0];
  if (output === undefined) {
    throw new Error("esbuild produced no bundle for the demo page");
  }
  return output.text;
}

/** A Link over a `ws` server socket: one JSON-RPC message per text frame. */
function socketLink(socket: WebSocket): Link {
  const messageHandlers = new Set<(message: unknown) => void>();
  const closeHandlers = new Set<(error?: Error) => void>();
  let closed = false;
  const finish = (error?: Error) => {
    if (closed) return;
    closed = true;
    messageHandlers.clear();
    const handlers = [...closeHandlers];
    closeHandlers.clear();
    for (const handler of handlers) handler(error);
  };
  socket.on("message", (data: RawData, isBinary: boolean) => {
    let message: unknown;
    try {
      message = JSON.parse(isBinary ? "" : data.toString());
    } catch {
      socket.close(1007, "one JSON-RPC message per text frame");
      return;
    }
    for (const handler of [...messageHandlers]) handler(message);
  });
  socket.on("close", () => finish());
  socket.on("error", (error) => finish(error));
  return {
    send(message: JsonRpcMessage) {
      if (closed) throw new Error("the window's WebSocket is closed");
      socket.send(JSON.stringify(message));
    },
    onMessage(handler) {
      const entry = (message: unknown) => handler(message);
      messageHandlers.add(entry);
      return () => messageHandlers.delete(entry);
    },
    onClose(handler) {
      const entry = (error?: Error) => handler(error);
      closeHandlers.add(entry);
      return () => closeHandlers.delete(entry);
    },
    close() {
      finish();
      socket.close(1000, "the host closed this window");
    },
  };
}

export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  const demoDir = options.demoDir ?? here;
  const [html, script] = await Promise.all([readFile(`${demoDir}/index.html`, "utf8"), bundlePage(demoDir)]);

  const stderr: string[] = [];
  const sidecar = createNodeLink(options.sidecarPath, {
    args: options.sidecarArgs ?? [],
    onStderr: options.onStderr ?? ((line) => stderr.push(line)),
  });
  const host = createSidecarHost({ link: sidecar, client: { name: "state-sync browser demo", version: "1" } });
  await host.ready;

  const http: Server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    const send = (status: number, type: string, body: string) => {
      response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
      response.end(body);
    };
    if (request.method !== "GET") send(405, "text/plain", "GET only");
    else if (path === "/" || path === "/index.html") send(200, "text/html; charset=utf-8", html);
    else if (path === "/app.js") send(200, "text/javascript; charset=utf-8", script);
    else send(404, "text/plain", "not found");
  });
  const sockets = new WebSocketServer({ server: http, path: "/ws" });
  sockets.on("connection", (socket) => host.attachWindow(socketLink(socket)));

  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.port ?? 0, "127.0.0.1", () => resolve()); // loopback only
  });
  const { port } = http.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/`,
    host,
    sidecar,
    windows: () => sockets.clients.size,
    stderr,
    async close() {
      for (const socket of sockets.clients) socket.terminate();
      await new Promise<void>((resolve) => sockets.close(() => resolve()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      host.close(); // closes every window's channels, then shuts the sidecar down
      await sidecar.dispose(); // resolves once it exited
    },
  };
}
