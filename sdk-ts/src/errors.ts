/** Error codes of protocol v1: the JSON-RPC 2.0 ones, then the sidecar's own. */
export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  UnknownChannel: -32001,
  ChannelExists: -32002,
  LimitReached: -32003,
  SourceConflict: -32004,
  RevisionConflict: -32005,
  UnsupportedProtocolVersion: -32006,
  SyncFailed: -32007,
  ShuttingDown: -32008,
  /**
   * A window's answer to a delta apply it could not use: its last applied revision is not
   * the delta's `baseRevision`, or the patch did not apply. `data.reason` is "baseMismatch"
   * or "patchFailed"; the sidecar then sends the full data (docs/protocol.md, Deltas).
   */
  DeltaRejected: -32011,
} as const;

/**
 * An error answered over JSON-RPC (or to be answered: a request handler may throw one to
 * choose the code). `code` and `data` are kept exactly as they were on the wire.
 */
export class RpcError extends Error {
  override name = "RpcError";
  readonly code: number;
  readonly data: unknown;

  constructor(code: number, message: string, data?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.data = data;
  }

  /** The `error` member of a JSON-RPC response. */
  toJSON(): { code: number; message: string; data?: unknown } {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/** A request that cannot get an answer because the connection is (or went) closed. */
export class ConnectionClosedError extends Error {
  override name = "ConnectionClosedError";
}

/** A request whose answer did not come within its timeout. */
export class RequestTimeoutError extends Error {
  override name = "RequestTimeoutError";
  readonly method: string;
  readonly timeoutMs: number;

  constructor(method: string, timeoutMs: number) {
    super(`${method}: no answer within ${timeoutMs} ms`);
    this.method = method;
    this.timeoutMs = timeoutMs;
  }
}

/** An operation on a revision-sync handle after stop(), as the Go engine's ErrStopped. */
export class StoppedError extends Error {
  override name = "StoppedError";
}
