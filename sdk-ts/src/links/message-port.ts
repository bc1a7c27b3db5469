import type { JsonRpcMessage, Link } from "../link.js";
import { LinkListeners } from "../link-listeners.js";

type Listener = (event: unknown) => void;

/**
 * A handler property typed as a method, so that it is compared bivariantly: the DOM's
 * `onmessage` takes a `MessageEvent`, which a `(event: unknown) => void` property would
 * refuse under `strictFunctionTypes`.
 */
type HandlerProperty = { handle(event: unknown): void }["handle"];

/**
 * What the link needs of a port, matched by shape: the DOM MessagePort (Electron
 * renderer, browsers, workers), Node's worker_threads MessagePort, Electron's
 * MessagePortMain (which has `on` instead of `addEventListener`), or anything with
 * `postMessage` and `onmessage`.
 */
export interface MessagePortLike {
  postMessage(message: unknown): void;
  addEventListener?(type: "message" | "close", listener: Listener): void;
  removeEventListener?(type: "message" | "close", listener: Listener): void;
  on?(type: "message" | "close", listener: Listener): unknown;
  off?(type: "message" | "close", listener: Listener): unknown;
  onmessage?: HandlerProperty | null;
  start?(): void;
  close?(): void;
}

/**
 * A link over a message port. Messages cross as structured clones (no JSON text), so a
 * relay forwards a snapshot without parsing it. The link closes when the port emits
 * `close` (Node, Electron, recent browsers) or when close() is called.
 */
export function createMessagePortLink(port: MessagePortLike): Link {
  const listeners = new LinkListeners();
  let closed = false;

  // Both the DOM and Electron's MessagePortMain hand over an event whose `data` is the message.
  const onPortMessage: Listener = (event) => {
    const message = (event as { data?: unknown }).data;
    listeners.deliver(message);
  };
  const onPortClose: Listener = () => finish();

  const listen = (type: "message" | "close", listener: Listener): (() => void) => {
    if (port.addEventListener !== undefined) {
      port.addEventListener(type, listener);
      return () => port.removeEventListener?.(type, listener);
    }
    if (port.on !== undefined) {
      port.on(type, listener);
      return () => port.off?.(type, listener);
    }
    if (type === "message" && "onmessage" in port) {
      port.onmessage = listener;
      return () => {
        port.onmessage = null;
      };
    }
    if (type === "close") {
      return () => {}; // such a port cannot say it closed: only close() ends the link
    }
    throw new TypeError("createMessagePortLink: want a port with addEventListener, on or onmessage");
  };
  const unlisten = [listen("message", onPortMessage), listen("close", onPortClose)];
  port.start?.(); // ports listened to with addEventListener or on() stay paused until started

  function finish(): void {
    if (closed) {
      return;
    }
    closed = true;
    for (const stop of unlisten) {
      stop();
    }
    listeners.closed();
  }

  return {
    send(message: JsonRpcMessage) {
      if (closed) {
        throw new Error("the message port link is closed");
      }
      port.postMessage(message);
    },
    onMessage: listeners.onMessage,
    onClose: listeners.onClose,
    close() {
      if (closed) {
        return;
      }
      finish();
      port.close?.();
    },
  };
}
