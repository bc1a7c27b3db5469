import { ConnectionClosedError, ErrorCodes, RequestTimeoutError, RpcError } from "./errors.js";
import {
  classifyMessage,
  type JsonRpcErrorObject,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
  type Link,
  type RequestId,
} from "./link.js";
import { jsonProblem } from "./params.js";
import { after } from "./timers.js";

/**
 * `connecting` until open() (the handshake, if any, runs in it), then `open` until
 * close() or the link closes; `closed` is final.
 */
export type ConnectionState = "connecting" | "open" | "closed";

export interface ConnectionOptions {
  /** Timeout of every request unless the call sets its own; none when absent. */
  requestTimeoutMs?: number;
}

export interface RequestOptions {
  /** Rejects with RequestTimeoutError when no answer comes within this many ms. */
  timeoutMs?: number;
  /** Allowed while `connecting`: for the handshake that opens the connection. */
  handshake?: boolean;
}

/** Answers one incoming request: its return value is the result; a throw is the error. */
export type RequestHandler = (params: unknown) => unknown;
export type NotificationHandler = (params: unknown) => void;

interface PendingRequest {
  method: string;
  resolve(result: unknown): void;
  reject(error: Error): void;
  cancelTimeout(): void;
}

/**
 * A JSON-RPC 2.0 peer over a Link: requests matched to responses by id, notifications,
 * and incoming requests and notifications dispatched to handlers registered per method.
 */
export class Connection {
  readonly #link: Link;
  readonly #options: ConnectionOptions;
  #state: ConnectionState = "connecting";
  #nextId = 1;
  readonly #pending = new Map<RequestId, PendingRequest>();
  readonly #requestHandlers = new Map<string, RequestHandler>();
  readonly #notificationHandlers = new Map<string, Set<NotificationHandler>>();
  readonly #closeHandlers = new Set<(error?: Error) => void>();
  readonly #unlisten: (() => void)[];

  constructor(link: Link, options: ConnectionOptions = {}) {
    this.#link = link;
    this.#options = { ...options };
    this.#unlisten = [
      link.onMessage((message) => this.#receive(message)),
      link.onClose((error) => this.#shutDown(error ?? new ConnectionClosedError("the link closed"))),
    ];
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Ends the handshake: from now on every request and notification may be sent. */
  open(): void {
    this.#assertNotClosed("open");
    this.#state = "open";
  }

  request<Result = unknown>(method: string, params?: unknown, options: RequestOptions = {}): Promise<Result> {
    try {
      this.#assertCanSend(method, options.handshake === true);
    } catch (error) {
      return Promise.reject(error);
    }
    const id = this.#nextId++;
    return new Promise<Result>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.#options.requestTimeoutMs;
      const pending: PendingRequest = {
        method,
        resolve: resolve as (result: unknown) => void,
        reject,
        cancelTimeout:
          timeoutMs === undefined
            ? () => {}
            : after(timeoutMs, () => {
                this.#pending.delete(id);
                reject(new RequestTimeoutError(method, timeoutMs));
              }),
      };
      this.#pending.set(id, pending);
      const request: JsonRpcRequest = { jsonrpc: "2.0", id, method };
      if (params !== undefined) {
        request.params = params;
      }
      try {
        this.#link.send(request);
      } catch (error) {
        this.#pending.delete(id);
        pending.cancelTimeout();
        reject(error instanceof Error ? error : new ConnectionClosedError(String(error)));
      }
    });
  }

  notify(method: string, params?: unknown): void {
    this.#assertCanSend(method, false);
    this.#link.send(params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params });
  }

  /** Answers incoming requests of one method. One handler per method. */
  onRequest(method: string, handler: RequestHandler): () => void {
    this.#assertNotClosed(`onRequest(${method})`);
    if (this.#requestHandlers.has(method)) {
      throw new Error(`a handler for requests "${method}" is already registered: dispose it first`);
    }
    this.#requestHandlers.set(method, handler);
    return () => {
      if (this.#requestHandlers.get(method) === handler) {
        this.#requestHandlers.delete(method);
      }
    };
  }

  /** Listens to incoming notifications of one method; many listeners may share one. */
  onNotification(method: string, handler: NotificationHandler): () => void {
    this.#assertNotClosed(`onNotification(${method})`);
    let handlers = this.#notificationHandlers.get(method);
    if (handlers === undefined) {
      handlers = new Set();
      this.#notificationHandlers.set(method, handlers);
    }
    const set = handlers;
    const entry: NotificationHandler = (params) => handler(params);
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  /** Called once when the connection closes; immediately if it already has. */
  onClose(handler: (error?: Error) => void): () => void {
    if (this.#state === "closed") {
      handler();
      return () => {};
    }
    const entry = (error?: Error) => handler(error);
    this.#closeHandlers.add(entry);
    return () => {
      this.#closeHandlers.delete(entry);
    };
  }

  /** Rejects every pending request, closes the link. Safe to call twice. */
  close(): void {
    this.#shutDown(undefined);
  }

  #shutDown(error: Error | undefined): void {
    if (this.#state === "closed") {
      return;
    }
    this.#state = "closed";
    for (const unlisten of this.#unlisten) {
      unlisten();
    }
    const reason = error ?? new ConnectionClosedError("the connection was closed");
    for (const pending of this.#pending.values()) {
      pending.cancelTimeout();
      pending.reject(
        reason instanceof ConnectionClosedError
          ? reason
          : new ConnectionClosedError(`${pending.method}: the connection closed: ${reason.message}`, {
              cause: reason,
            }),
      );
    }
    this.#pending.clear();
    this.#requestHandlers.clear();
    this.#notificationHandlers.clear();
    this.#link.close();
    const handlers = [...this.#closeHandlers];
    this.#closeHandlers.clear();
    for (const handler of handlers) {
      try {
        handler(error);
      } catch {
        // A close listener's failure must not stop the others from hearing of it.
      }
    }
  }

  #assertNotClosed(what: string): void {
    if (this.#state === "closed") {
      throw new ConnectionClosedError(`${what}: the connection is closed`);
    }
  }

  #assertCanSend(method: string, handshake: boolean): void {
    this.#assertNotClosed(method);
    if (this.#state === "connecting" && !handshake) {
      throw new Error(`${method}: the connection is still connecting: wait for connect() to resolve`);
    }
  }

  #receive(value: unknown): void {
    if (this.#state === "closed") {
      return;
    }
    const incoming = classifyMessage(value);
    switch (incoming.kind) {
      case "response":
        this.#settle(incoming.message);
        return;
      case "request":
        void this.#answer(incoming.message);
        return;
      case "notification": {
        const handlers = this.#notificationHandlers.get(incoming.message.method);
        for (const handler of handlers ?? []) {
          try {
            handler(incoming.message.params);
          } catch {
            // One listener's failure is its own; the connection keeps serving.
          }
        }
        return;
      }
      case "invalid":
        if (incoming.id !== null) {
          this.#trySend({
            jsonrpc: "2.0",
            id: incoming.id,
            error: { code: ErrorCodes.InvalidRequest, message: "not a JSON-RPC 2.0 message" },
          });
        }
        return;
    }
  }

  #settle(response: JsonRpcResponse): void {
    const pending = response.id === null ? undefined : this.#pending.get(response.id);
    if (pending === undefined || response.id === null) {
      return; // an answer after its timeout, or to nothing we asked
    }
    this.#pending.delete(response.id);
    pending.cancelTimeout();
    if ("error" in response) {
      const { code, message, data } = response.error;
      pending.reject(new RpcError(code, typeof message === "string" ? message : String(message), data));
    } else {
      pending.resolve(response.result);
    }
  }

  async #answer(request: JsonRpcRequest): Promise<void> {
    const handler = this.#requestHandlers.get(request.method);
    let response: JsonRpcMessage;
    if (handler === undefined) {
      response = {
        jsonrpc: "2.0",
        id: request.id,
        error: { code: ErrorCodes.MethodNotFound, message: `method "${request.method}" is not handled here` },
      };
    } else {
      try {
        const result = await handler(request.params);
        response = { jsonrpc: "2.0", id: request.id, result: result === undefined ? null : result };
      } catch (error) {
        response = { jsonrpc: "2.0", id: request.id, error: toErrorObject(error) };
      }
    }
    if (this.#state !== "closed") {
      this.#sendAnswer(request.method, response);
    }
  }

  /**
   * Sends an answer. A result the link cannot encode (a BigInt, a cycle) is the handler's
   * mistake, not a lost link: the caller gets an error answer at once that says what could
   * not be encoded, instead of waiting for its timeout.
   */
  #sendAnswer(method: string, response: JsonRpcResponse): void {
    try {
      this.#link.send(response);
      return;
    } catch (error) {
      const problem = "result" in response ? jsonProblem(response.result, "result") : undefined;
      if (problem === undefined) {
        return; // the link went away while we answered; its close handler closes us
      }
      this.#trySend({
        jsonrpc: "2.0",
        id: response.id,
        error: {
          code: ErrorCodes.InternalError,
          message: `${method}: the answer cannot be encoded as JSON: ${problem}`,
          data: { cause: error instanceof Error ? error.message : String(error) },
        },
      });
    }
  }

  #trySend(message: JsonRpcMessage): void {
    try {
      this.#link.send(message);
    } catch {
      // The link went away while we answered; its close handler closes us.
    }
  }
}

/** The wire form of an error thrown by a request handler. */
export function toErrorObject(error: unknown): JsonRpcErrorObject {
  if (error instanceof RpcError) {
    return error.toJSON();
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: ErrorCodes.InternalError, message };
}
