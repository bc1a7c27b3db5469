import type { JsonRpcMessage, Link } from "../../src/index.js";

/**
 * A Link over a browser WebSocket: one JSON-RPC message per text frame. The SDK has no
 * WebSocket link of its own; a Link is four methods, and this is all it takes. Resolves
 * once the socket is open.
 */
export function createWebSocketLink(url: string): Promise<Link> {
  const socket = new WebSocket(url);
  const messageHandlers = new Set<(message: unknown) => void>();
  const closeHandlers = new Set<(error?: Error) => void>();
  let closed = false;

  const finish = (error?: Error): void => {
    if (closed) {
      return;
    }
    closed = true;
    messageHandlers.clear();
    const handlers = [...closeHandlers];
    closeHandlers.clear();
    for (const handler of handlers) {
      handler(error);
    }
  };

  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") {
      return; // the host only sends text frames
    }
    const message: unknown = JSON.parse(event.data);
    for (const handler of [...messageHandlers]) {
      handler(message);
    }
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
    onMessage(handler) {
      const entry = (message: unknown) => handler(message);
      messageHandlers.add(entry);
      return () => {
        messageHandlers.delete(entry);
      };
    },
    onClose(handler) {
      const entry = (error?: Error) => handler(error);
      closeHandlers.add(entry);
      return () => {
        closeHandlers.delete(entry);
      };
    },
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
