/**
 * A Link carries whole JSON-RPC messages between two peers, as JSON values: the link
 * serialises and frames them itself when its transport is a byte stream (NDJSON over a
 * child's stdio) and hands them over as they are when its transport clones objects
 * (MessagePort). That way a relay in the middle routes messages without parsing or
 * re-serialising a 1 MiB snapshot twice.
 */
export interface Link {
  /** Sends one message. Throws if the link is closed. */
  send(message: JsonRpcMessage): void;
  /** Calls handler with each message received, in order. Returns a disposer. */
  onMessage(handler: (message: unknown) => void): () => void;
  /**
   * Calls handler once when the link closes, by close() or from the other side (process
   * exit, port closed); `error` says why when it was not a normal close. Returns a disposer.
   */
  onClose(handler: (error?: Error) => void): () => void;
  /** Closes the link. Safe to call twice. */
  close(): void;
}

/** A JSON-RPC 2.0 id: this SDK only ever sends numbers, but peers may use strings. */
export type RequestId = number | string;

export interface JsonRpcRequest {
  jsonrpc: "2.0";
  id: RequestId;
  method: string;
  params?: unknown;
}

export interface JsonRpcNotification {
  jsonrpc: "2.0";
  method: string;
  params?: unknown;
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export type JsonRpcResponse =
  | { jsonrpc: "2.0"; id: RequestId | null; result: unknown }
  | { jsonrpc: "2.0"; id: RequestId | null; error: JsonRpcErrorObject };

export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/** A message as classified on arrival; anything else is `invalid`. */
export type IncomingMessage =
  | { kind: "request"; message: JsonRpcRequest }
  | { kind: "notification"; message: JsonRpcNotification }
  | { kind: "response"; message: JsonRpcResponse }
  | { kind: "invalid"; id: RequestId | null };

/** Classifies a received value without trusting its shape. */
export function classifyMessage(value: unknown): IncomingMessage {
  if (!isRecord(value) || value.jsonrpc !== "2.0") {
    return { kind: "invalid", id: isRecord(value) ? idOf(value.id) : null };
  }
  const id = value.id;
  if (typeof value.method === "string") {
    if (id === undefined) {
      return { kind: "notification", message: value as unknown as JsonRpcNotification };
    }
    if (typeof id === "number" || typeof id === "string") {
      return { kind: "request", message: value as unknown as JsonRpcRequest };
    }
    return { kind: "invalid", id: null };
  }
  const hasResult = "result" in value;
  const hasError = isRecord(value.error) && typeof value.error.code === "number";
  if ((hasResult || hasError) && (typeof id === "number" || typeof id === "string" || id === null)) {
    return { kind: "response", message: value as unknown as JsonRpcResponse };
  }
  return { kind: "invalid", id: idOf(id) };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function idOf(id: unknown): RequestId | null {
  return typeof id === "number" || typeof id === "string" ? id : null;
}
