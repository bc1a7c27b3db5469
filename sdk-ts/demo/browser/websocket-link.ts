import type { JsonRpcMessage, Link } from "../../src/index.js";
import { LinkListeners } from "../../src/link-listeners.js";

/**
 * A Link over a browser WebSocket: one JSON-RPC message per text frame. The SDK has no
 * WebSocket link of its own; a Link is four methods, and this is all it takes. Resolves
 * once the socket is open.
 */
export function createWebSocketLink(url: string): Promise<Link> {
  const socket = new WebSocket(url);
  const listeners = new LinkListeners();
  let closed = false;

  const finish = (error?: Error): void => {
    if (closed) {
      return;
    }
    closed = true;
    listeners.closed(error);
  };

  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") {
      return; // the host only sends text frames
    }
    const message: unknown = JSON.parse(event.data);
    listeners.deliver(message);
  });
  socket.addEventListener("close", (event) =>
    finish(event.wasClean ? undefined : new Error(`the host's WebSocket closed (code ${event.code})`)),
  );

  const link: Link = {
    send(message: JsonRpcMessage) {
      if (closed) {
        throw new Error("the WebSocket link is closed");
      }
      socket.send(JSON.stringify(message));
    },
    onMessage: listeners.onMessage,
    onClose: listeners.onClose,
    close() {
      finish();
      socket.close();
    },
  };

  return new Promise((resolve, reject) => {
    socket.addEventListener("open", () => resolve(link), { once: true });
    socket.addEventListener("error", () => reject(new Error(`could not reach the host at ${url}`)), { once: true });
  });
}
