import { Connection, type ConnectionOptions, type ConnectionState, type RequestOptions } from "./connection.js";
import { ErrorCodes, RpcError } from "./errors.js";
import { applyPatch, cloneJson, freezeJson, type JsonPatch, JsonPatchError } from "./json-patch.js";
import { isRecord, type Link } from "./link.js";
import { checkInvalidateParams, checkPatchParams, checkSetParams } from "./params.js";
import {
  type ApplyParams,
  type ChannelRevision,
  type ChannelStatus,
  type DeltaRejection,
  type ErrorNotification,
  type GetResult,
  type InitializeResult,
  type InvalidateParams,
  type OpenChannelParams,
  type OpenChannelResult,
  PROTOCOL_VERSION,
  type Revision,
  type SetResult,
  type Snapshot,
} from "./protocol.js";

export interface ConnectOptions extends ConnectionOptions {
  /** Sent in `initialize`, shown in the sidecar's logs. */
  client?: { name: string; version?: string };
  /** Timeout of the `initialize` handshake; 10 s by default. */
  handshakeTimeoutMs?: number;
}

/** What a window answers for one of its channels. */
export interface ChannelHandlers {
  /** Answers `getSnapshot {channel}`: present for channels of source `channel`. */
  getSnapshot?(): Promise<Snapshot>;
  /**
   * Runs `apply {channel}`; a throw answers "not applied". `data` is always the full new
   * data: a delta is applied by the client first (see openChannel), and `data` is never an
   * object the client changes later.
   */
  apply(params: ApplyParams): Promise<void> | void;
  /**
   * Hand `apply` deeply frozen data (Object.freeze) instead of data of its own: for state
   * libraries that never change their state in place (Redux, Zustand, React state). On a
   * delta channel the client then keeps that same data as the next patch's base instead
   * of a deep copy, so a delta costs the window the size of the change, not of the state.
   * A change to it throws a TypeError (strict mode, as in every ES module).
   */
  freezeData?: boolean;
  /** Gets the sidecar's `error` notifications for the channel. */
  onError?(params: ErrorNotification): void;
}

/** What a delta channel last applied. */
interface Base {
  revision: Revision;
  epoch?: string;
  data: unknown;
}

/**
 * Connects to a sidecar over a link: the `initialize` handshake checks that both speak
 * protocol v1, then the client is open. On failure the link is closed.
 */
export async function connect(link: Link, options: ConnectOptions = {}): Promise<StateSyncClient> {
  const connection = new Connection(link, options);
  let server: InitializeResult;
  try {
    server = await connection.request<InitializeResult>(
      "initialize",
      { protocolVersion: PROTOCOL_VERSION, ...(options.client === undefined ? {} : { client: options.client }) },
      { handshake: true, timeoutMs: options.handshakeTimeoutMs ?? 10_000 },
    );
    if (!isRecord(server) || server.protocolVersion !== PROTOCOL_VERSION) {
      const spoken = isRecord(server) ? String(server.protocolVersion) : "nothing";
      throw new RpcError(
        ErrorCodes.UnsupportedProtocolVersion,
        `the sidecar speaks protocol ${spoken}, this SDK speaks ${PROTOCOL_VERSION}: install matching versions of @state-sync/sdk and statesync-sidecar`,
      );
    }
  } catch (error) {
    connection.close();
    throw error;
  }
  connection.open();
  return new StateSyncClient(connection, server);
}

/**
 * The protocol's methods over one connection, plus the routing of the sidecar's calls
 * (`getSnapshot`, `apply`, `error`) to the window code that serves each channel.
 */
export class StateSyncClient {
  /** The raw JSON-RPC connection, for methods this class does not wrap. */
  readonly connection: Connection;
  /** What the sidecar answered to `initialize`. */
  readonly server: InitializeResult;
  readonly #channels = new Map<string, ChannelHandlers>();
  /**
   * Channels opened with `deltas: true`, and what each last applied (undefined until its
   * first apply): a private copy, never handed to an applier, that the next patch applies to.
   */
  readonly #bases = new Map<string, Base | undefined>();
  readonly #errorHandlers = new Set<(params: ErrorNotification) => void>();
  #hostSnapshots: ((topic: string) => Promise<Snapshot>) | undefined;

  constructor(connection: Connection, server: InitializeResult) {
    this.connection = connection;
    this.server = server;
    connection.onRequest("getSnapshot", (params) => this.#getSnapshot(params));
    connection.onRequest("apply", (params) => this.#apply(params));
    connection.onNotification("error", (params) => this.#error(params));
  }

  get state(): ConnectionState {
    return this.connection.state;
  }

  /**
   * Opens a channel. With `options.deltas: true` (send it only when `server.capabilities`
   * has `deltas`: an older sidecar refuses the option), the client keeps a copy of what the
   * channel last applied, turns each delta apply into the full new data before the
   * channel's handler sees it, and answers DeltaRejected (-32011) when it cannot: the
   * sidecar then sends the full data.
   */
  openChannel(params: OpenChannelParams, options?: RequestOptions): Promise<OpenChannelResult> {
    if (isRecord(params) && typeof params.channel === "string") {
      if (params.options?.deltas === true) {
        this.#bases.set(params.channel, undefined); // before sending: the first apply comes before the answer
      } else {
        this.#bases.delete(params.channel);
      }
    }
    return this.connection.request("channel.open", params, options);
  }

  async closeChannel(channel: string, options?: RequestOptions): Promise<ChannelRevision> {
    const result = await this.connection.request<ChannelRevision>("channel.close", { channel }, options);
    this.#bases.delete(channel);
    return result;
  }

  refreshChannel(channel: string, options?: RequestOptions): Promise<ChannelRevision> {
    return this.connection.request("channel.refresh", { channel }, options);
  }

  channelStatus(channel: string, options?: RequestOptions): Promise<ChannelStatus> {
    return this.connection.request("channel.status", { channel }, options);
  }

  async listChannels(options?: RequestOptions): Promise<ChannelStatus[]> {
    const result = await this.connection.request<{ channels: ChannelStatus[] }>("channel.list", {}, options);
    return result.channels;
  }

  /**
   * Sends `invalidate` as a notification: fire and forget. Params the sidecar would refuse
   * (a non-canonical revision, an empty topic) throw here, RpcError -32602 with the
   * sidecar's message, instead of coming back later as an error notification.
   */
  invalidate(params: InvalidateParams): void {
    checkInvalidateParams(params);
    this.connection.notify("invalidate", params);
  }

  /** Sends `invalidate` as a request; resolves with how many channels it reached. */
  async invalidateAndCount(params: InvalidateParams, options?: RequestOptions): Promise<number> {
    checkInvalidateParams(params);
    const result = await this.connection.request<{ delivered: number }>("invalidate", params, options);
    return result.delivered;
  }

  /**
   * Writes a topic of the embedded store. With `expectedRevision`, a compare-and-set that
   * rejects with RpcError -32005 (`data.currentRevision`) when the topic moved on. Params
   * the sidecar would refuse, and data JSON cannot carry as written (a Map, a BigInt, a
   * cycle, NaN), reject with RpcError -32602 before anything is sent.
   */
  set(
    topic: string,
    data: unknown,
    options: { expectedRevision?: Revision; sourceId?: string } & RequestOptions = {},
  ): Promise<SetResult> {
    const { expectedRevision, sourceId, ...requestOptions } = options;
    try {
      checkSetParams(topic, data, expectedRevision, sourceId);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.connection.request(
      "state.set",
      {
        topic,
        data,
        ...(expectedRevision === undefined ? {} : { expectedRevision }),
        ...(sourceId === undefined ? {} : { sourceId }),
      },
      requestOptions,
    );
  }

  /**
   * Changes a topic of the embedded store by an RFC 6902 JSON Patch (`state.patch`): the
   * whole patch applies or nothing changes. A failed `test` op rejects with RpcError
   * -32005 (`data.currentRevision`, `data.path`, `data.index`), as does a mismatched
   * `expectedRevision` (`data.currentRevision`): `test` ops are a compare-and-set per path.
   * A patch that is not RFC 6902 rejects with RpcError -32602 naming the op before anything
   * is sent; one that does not fit the data (a path to replace that is not there, a topic
   * with no data), -32602 from the sidecar.
   */
  patch(
    topic: string,
    patch: JsonPatch,
    options: { expectedRevision?: Revision; sourceId?: string } & RequestOptions = {},
  ): Promise<SetResult> {
    const { expectedRevision, sourceId, ...requestOptions } = options;
    try {
      checkPatchParams(topic, patch, expectedRevision, sourceId);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.connection.request(
      "state.patch",
      {
        topic,
        patch,
        ...(expectedRevision === undefined ? {} : { expectedRevision }),
        ...(sourceId === undefined ? {} : { sourceId }),
      },
      requestOptions,
    );
  }

  /**
   * Returns a topic of the embedded store to unset. The deletion is the topic's next
   * revision: open channels are applied it with `deleted: true` and `data: null`, and the
   * next write goes on from it. With `expectedRevision`, a compare-and-set (RpcError
   * -32005). A topic with no data is left as it is and its revision returned.
   */
  delete(
    topic: string,
    options: { expectedRevision?: Revision; sourceId?: string } & RequestOptions = {},
  ): Promise<SetResult> {
    const { expectedRevision, sourceId, ...requestOptions } = options;
    return this.connection.request(
      "state.delete",
      {
        topic,
        ...(expectedRevision === undefined ? {} : { expectedRevision }),
        ...(sourceId === undefined ? {} : { sourceId }),
      },
      requestOptions,
    );
  }

  /** Reads a topic of the embedded store: revision "0" and no data when never set. */
  get<T = unknown>(topic: string, options?: RequestOptions): Promise<GetResult<T>> {
    return this.connection.request("state.get", { topic }, options);
  }

  /** Stops every engine; the sidecar exits after answering. */
  async shutdown(options?: RequestOptions): Promise<void> {
    await this.connection.request("shutdown", {}, options);
  }

  /**
   * Routes the sidecar's `getSnapshot`/`apply`/`error` for one channel to handlers. Until
   * the disposer runs; after it, the sidecar's calls for the channel are answered
   * -32001, so an `apply` already on the wire is never applied.
   */
  serveChannel(channel: string, handlers: ChannelHandlers): () => void {
    if (this.connection.state === "closed") {
      throw new RpcError(ErrorCodes.UnknownChannel, `serveChannel(${channel}): the connection is closed`);
    }
    if (this.#channels.has(channel)) {
      throw new RpcError(ErrorCodes.ChannelExists, `channel "${channel}" is already served on this connection`);
    }
    this.#channels.set(channel, handlers);
    return () => {
      if (this.#channels.get(channel) === handlers) {
        this.#channels.delete(channel);
        this.#bases.delete(channel); // nothing more is applied here; a reopen starts afresh
      }
    };
  }

  /** Answers `getSnapshot {topic}` for topics of source `host` (the host is the source of truth). */
  serveHostSnapshots(getSnapshot: (topic: string) => Promise<Snapshot>): () => void {
    if (this.#hostSnapshots !== undefined) {
      throw new Error("host snapshots are already served on this connection: dispose the first provider");
    }
    this.#hostSnapshots = getSnapshot;
    return () => {
      if (this.#hostSnapshots === getSnapshot) {
        this.#hostSnapshots = undefined;
      }
    };
  }

  /** Hears every `error` notification of the sidecar, whatever its channel. */
  onError(handler: (params: ErrorNotification) => void): () => void {
    const entry = (params: ErrorNotification) => handler(params);
    this.#errorHandlers.add(entry);
    return () => {
      this.#errorHandlers.delete(entry);
    };
  }

  onClose(handler: (error?: Error) => void): () => void {
    return this.connection.onClose(handler);
  }

  close(): void {
    this.connection.close();
  }

  async #getSnapshot(params: unknown): Promise<Snapshot> {
    if (!isRecord(params) || typeof params.topic !== "string") {
      throw new RpcError(ErrorCodes.InvalidParams, "getSnapshot: want params {topic, channel?}");
    }
    if (typeof params.channel === "string") {
      const provider = this.#served(params.channel).getSnapshot;
      if (provider === undefined) {
        throw new RpcError(ErrorCodes.InvalidParams, `channel "${params.channel}" has no snapshot provider here`);
      }
      return provider();
    }
    if (this.#hostSnapshots === undefined) {
      throw new RpcError(
        ErrorCodes.MethodNotFound,
        `getSnapshot for host topic "${params.topic}": no host snapshot provider is served on this connection`,
      );
    }
    return this.#hostSnapshots(params.topic);
  }

  async #apply(params: unknown): Promise<Record<string, never>> {
    if (!isRecord(params) || typeof params.channel !== "string") {
      throw new RpcError(ErrorCodes.InvalidParams, "apply: want params {channel, topic, revision, data}");
    }
    const channel = params.channel;
    const handlers = this.#served(channel);
    const tracked = this.#bases.has(channel);
    const delta = params.patch !== undefined || params.baseRevision !== undefined;
    const applied: ApplyParams = delta
      ? { ...(params as unknown as ApplyParams), data: this.#patched(channel, params, handlers.freezeData === true) }
      : (params as unknown as ApplyParams);
    // Copied before the handler runs: it may keep `data` (a Vue reactive wraps it) and
    // change it later, and the next patch must apply to what was sent. Frozen data cannot
    // change: it is kept as it is (applyPatch never writes to its input).
    let kept: unknown;
    if (handlers.freezeData === true) {
      kept = delta ? applied.data : freezeJson(applied.data);
    } else if (tracked) {
      kept = cloneJson(applied.data);
    }
    try {
      await handlers.apply(applied);
    } catch (error) {
      if (delta && this.#channels.get(channel) === handlers) {
        // The handler may hold parts of the patched data, which share the kept base's
        // untouched parts: drop the base, so the next delta is answered with a full apply.
        this.#bases.set(channel, undefined);
      }
      throw error;
    }
    if (tracked && this.#channels.get(channel) === handlers) {
      this.#bases.set(channel, {
        revision: applied.revision,
        ...(applied.epoch === undefined ? {} : { epoch: applied.epoch }),
        data: kept,
      });
    }
    return {};
  }

  /** The full new data of a delta apply, or DeltaRejected; the handler is not called then. */
  #patched(channel: string, params: Record<string, unknown>, freeze: boolean): unknown {
    const base = this.#bases.get(channel);
    const local = base === undefined ? {} : { localRevision: base.revision };
    const reject = (reason: DeltaRejection["reason"], why: string): RpcError =>
      new RpcError(ErrorCodes.DeltaRejected, `delta rejected (${reason}): ${why}; send the full data`, {
        reason,
        ...local,
      } satisfies DeltaRejection);
    if (params.data !== undefined) {
      throw reject("patchFailed", "the apply carries both data and patch");
    }
    if (base === undefined) {
      throw reject(
        "baseMismatch",
        this.#bases.has(channel)
          ? `channel "${channel}" has applied no data yet`
          : `channel "${channel}" was not opened with deltas here`,
      );
    }
    if (params.baseRevision !== base.revision || params.epoch !== base.epoch) {
      throw reject(
        "baseMismatch",
        `the patch is from revision ${JSON.stringify(params.baseRevision)}${params.epoch === base.epoch ? "" : ` of epoch ${JSON.stringify(params.epoch)}`}, channel "${channel}" last applied ${base.revision}${base.epoch === undefined ? "" : ` of epoch ${JSON.stringify(base.epoch)}`}`,
      );
    }
    try {
      // With freeze the base is deeply frozen: only what the patch made needs freezing.
      return applyPatch(base.data, params.patch, { freeze });
    } catch (error) {
      if (error instanceof JsonPatchError) {
        throw reject("patchFailed", error.message);
      }
      throw error;
    }
  }

  #served(channel: string): ChannelHandlers {
    const handlers = this.#channels.get(channel);
    if (handlers === undefined) {
      throw new RpcError(
        ErrorCodes.UnknownChannel,
        `channel "${channel}" is not served by this window: it was stopped or never opened here`,
      );
    }
    return handlers;
  }

  #error(params: unknown): void {
    if (!isRecord(params) || !isRecord(params.error)) {
      return; // not an error report we could hand to anyone
    }
    const notification = params as unknown as ErrorNotification;
    const owner = typeof notification.channel === "string" ? this.#channels.get(notification.channel) : undefined;
    for (const handler of [...(owner?.onError ? [owner.onError] : []), ...this.#errorHandlers]) {
      try {
        handler(notification);
      } catch {
        // An error hook that throws must not keep the others from hearing.
      }
    }
  }
}
