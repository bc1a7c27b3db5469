import type { StateSyncClient } from "./client.js";
import { ErrorCodes, RpcError, StoppedError } from "./errors.js";
import { isRecord } from "./link.js";
import type {
  ApplyParams,
  ChannelOptions,
  ErrorNotification,
  InvalidateParams,
  Revision,
  Snapshot,
  SyncPhase,
  ThrottlingOptions,
} from "./protocol.js";
import { isCanonicalRevision } from "./revision.js";

// The seed's interfaces (state-sync 0001), unchanged, so that moving over is one import.

export interface InvalidationSubscriber {
  /** Starts delivering events; resolves with the function that stops them. */
  subscribe(handler: (event: unknown) => void): Promise<() => void>;
}

export interface SnapshotProvider<T> {
  getSnapshot(): Promise<Snapshot<T>>;
}

export interface SnapshotApplier<T> {
  /**
   * `epoch` is there when the source names its lives; `deleted` when a store topic was
   * deleted (state.delete), with data null.
   */
  apply(envelope: { revision: Revision; data: T; epoch?: string; deleted?: true }): void | Promise<void>;
}

export interface RevisionSyncHandle {
  start(): Promise<void>;
  stop(): void;
  refresh(): Promise<void>;
  getLocalRevision(): Revision;
}

/** `console` fits. Every method is optional. */
export interface Logger {
  debug?(message: string, context?: object): void;
  warn?(message: string, context?: object): void;
  error?(message: string, context?: object): void;
}

/**
 * The seed's SyncErrorContext. `error` is what was thrown for the SDK's own reports, and
 * an RpcError (code, message, data from the wire) for the sidecar's.
 */
export interface SyncErrorContext {
  phase: SyncPhase;
  topic?: string;
  channel?: string;
  error: unknown;
  sourceEvent?: unknown;
  localRevision?: Revision;
  eventRevision?: Revision;
  snapshotRevision?: Revision;
  attempt?: number;
  willRetry?: boolean;
  nextDelayMs?: number;
}

interface CommonOptions<T> {
  topic: string;
  /** The sidecar connection (over a stream link, or through the host relay). */
  connection: StateSyncClient;
  applier: SnapshotApplier<T>;
  /** This window's invalidation events, forwarded to its channel. */
  subscriber?: InvalidationSubscriber;
  /** Filters events that are valid and of this topic; false drops the event. */
  shouldRefresh?: (event: unknown) => boolean;
  logger?: Logger;
  onError?: (context: SyncErrorContext) => void;
  /** The channel's name, unique among open channels; a fresh id by default. */
  channel?: string;
  /** Passed to channel.open: call timeout, resync interval, retry policy. */
  channelOptions?: ChannelOptions;
  /**
   * Debounce and throttle of the refreshes events ask for, as @statesync/core's option of
   * the same name; the sidecar's engine applies it (channel.open options.throttling).
   */
  throttling?: ThrottlingOptions;
}

/**
 * With a provider, the window itself answers the snapshots (source `channel`); without
 * one, the topic's source does (`store` or `host`, or the sidecar's default when absent).
 */
export type RevisionSyncOptions<T> = CommonOptions<T> &
  ({ provider: SnapshotProvider<T>; source?: "channel" } | { provider?: undefined; source?: "store" | "host" });

type Status = "idle" | "starting" | "running" | "stopped";

/**
 * The seed's createRevisionSync, with the engine in the sidecar. start() subscribes the
 * subscriber, then opens the channel (the sidecar fetches and applies the first
 * snapshot before answering). Events are validated, filtered and forwarded as
 * `invalidate {channel}`; the sidecar's `getSnapshot` is answered by the provider and its
 * `apply` runs the applier. stop() is synchronous: from its return on, no apply reaches
 * the applier, even one already on the wire.
 */
export function createRevisionSync<T>(options: RevisionSyncOptions<T>): RevisionSyncHandle {
  const { topic, connection, applier, subscriber, provider, shouldRefresh, logger, onError } = options;
  if (provider !== undefined && options.source !== undefined && options.source !== "channel") {
    throw new TypeError(`createRevisionSync: a provider makes the source "channel", not "${options.source}"`);
  }
  const source = provider !== undefined ? "channel" : options.source;
  const channel = options.channel ?? `${topic}#${uniqueId()}`;
  const channelOptions = withThrottling(options.channelOptions, options.throttling);

  let status: Status = "idle";
  let localRevision: Revision = "0";
  let unsubscribe: (() => void) | undefined;
  let unserve: (() => void) | undefined;
  /** The channel.open in flight, for stop() to close the channel it may still open. */
  let opening: Promise<unknown> | undefined;
  let startPromise: Promise<void> | undefined;
  /** Events that came before the channel was open in the sidecar, sent once it is. */
  let earlyEvents: InvalidateParams[] = [];

  const report = (context: SyncErrorContext): void => {
    const full: SyncErrorContext = { topic, channel, localRevision, ...context };
    logger?.warn?.(`state-sync ${channel}: ${full.phase} failed`, full);
    try {
      onError?.(full);
    } catch (error) {
      logger?.error?.(`state-sync ${channel}: onError threw`, { error });
    }
  };

  const reportFromSidecar = (params: ErrorNotification): void => {
    const { error } = params;
    const cause =
      typeof error.code === "number"
        ? new RpcError(error.code, error.message, error.data)
        : new Error(String(error.message), { cause: error.data });
    report({ ...params, error: cause });
  };

  const forward = (params: InvalidateParams): void => {
    try {
      connection.invalidate(params);
    } catch (error) {
      report({ phase: "refresh", error, sourceEvent: params, eventRevision: params.revision });
    }
  };

  const onEvent = (event: unknown): void => {
    try {
      if (status !== "starting" && status !== "running") {
        return; // a subscriber that still delivers after stop, or before start
      }
      const problem = eventProblem(event);
      if (problem !== undefined) {
        report({
          phase: "protocol",
          error: new RpcError(ErrorCodes.InvalidParams, problem),
          sourceEvent: boundedEvent(event),
        });
        return;
      }
      const valid = event as InvalidateParams;
      if (valid.topic !== topic) {
        logger?.debug?.(`state-sync ${channel}: ignore event of topic ${valid.topic}`);
        return;
      }
      if (shouldRefresh !== undefined && !callShouldRefresh(valid)) {
        return;
      }
      const params: InvalidateParams = { ...valid, channel };
      if (status === "starting") {
        earlyEvents.push(params);
      } else {
        forward(params);
      }
    } catch (error) {
      // The subscriber is someone else's code: it never sees our failures.
      report({ phase: "protocol", error, sourceEvent: boundedEvent(event) });
    }
  };

  const callShouldRefresh = (event: InvalidateParams): boolean => {
    try {
      return shouldRefresh?.(event) !== false;
    } catch (error) {
      report({ phase: "protocol", error, sourceEvent: event, eventRevision: event.revision });
      return false;
    }
  };

  const serveApply = async (params: ApplyParams): Promise<void> => {
    if (status === "stopped" || status === "idle") {
      throw new RpcError(ErrorCodes.UnknownChannel, `channel "${channel}" is stopped: not applied`);
    }
    if (!isCanonicalRevision(params.revision)) {
      throw new RpcError(
        ErrorCodes.InvalidParams,
        `apply: revision ${JSON.stringify(params.revision)} is not canonical`,
      );
    }
    logger?.debug?.(`state-sync ${channel}: apply ${params.revision}`);
    await applier.apply({
      revision: params.revision,
      data: params.data as T,
      ...(params.epoch === undefined ? {} : { epoch: params.epoch }),
      ...(params.deleted === true ? { deleted: true as const } : {}),
    });
    localRevision = params.revision;
  };

  const serveSnapshot = async (): Promise<Snapshot> => {
    if (provider === undefined || status === "stopped") {
      throw new RpcError(ErrorCodes.UnknownChannel, `channel "${channel}" is stopped or has no provider`);
    }
    return provider.getSnapshot();
  };

  /** Returns to idle after a failed start, leaving nothing behind. */
  const reset = (): void => {
    const stopSubscription = unsubscribe;
    unsubscribe = undefined;
    unserve?.();
    unserve = undefined;
    opening = undefined;
    earlyEvents = [];
    localRevision = "0";
    status = "idle";
    callSafely(stopSubscription, "unsubscribe");
  };

  const callSafely = (fn: (() => void) | undefined, what: string): void => {
    try {
      fn?.();
    } catch (error) {
      logger?.error?.(`state-sync ${channel}: ${what} threw`, { error });
    }
  };

  /**
   * Closes the channel in the sidecar. A close that arrives while the channel is still
   * opening makes the open fail; one that arrives before the sidecar has seen the open
   * fails with -32001 instead, and then the channel is closed again once it has opened.
   */
  const closeInBackground = async (pendingOpen: Promise<unknown> | undefined): Promise<void> => {
    const closed = await connection.closeChannel(channel).then(
      () => true,
      () => false,
    );
    if (closed || pendingOpen === undefined) {
      return;
    }
    try {
      await pendingOpen;
    } catch {
      return; // it never opened: nothing left to close
    }
    await connection
      .closeChannel(channel)
      .catch((error: unknown) => logger?.debug?.(`state-sync ${channel}: close after stop`, { error }));
  };

  const start = async (): Promise<void> => {
    unserve = connection.serveChannel(channel, {
      apply: serveApply,
      ...(provider === undefined ? {} : { getSnapshot: serveSnapshot }),
      onError: reportFromSidecar,
    });

    if (subscriber !== undefined) {
      let subscription: () => void;
      try {
        subscription = await subscriber.subscribe(onEvent);
      } catch (error) {
        if (status === "stopped") {
          throw new StoppedError(`channel "${channel}" was stopped while subscribing`);
        }
        report({ phase: "subscribe", error });
        reset();
        throw error;
      }
      if (status === "stopped") {
        // stop() ran while subscribe() was pending: it could not unsubscribe then.
        callSafely(subscription, "unsubscribe");
        throw new StoppedError(`channel "${channel}" was stopped while subscribing`);
      }
      unsubscribe = subscription;
    }

    const open = connection.openChannel({
      channel,
      topic,
      ...(source === undefined ? {} : { source }),
      ...(channelOptions === undefined ? {} : { options: channelOptions }),
    });
    opening = open;
    try {
      await open;
    } catch (error) {
      if (status === "stopped") {
        throw new StoppedError(`channel "${channel}" was stopped while opening`);
      }
      reset();
      throw error;
    }
    if (status === "stopped") {
      throw new StoppedError(`channel "${channel}" was stopped while opening`);
    }
    opening = undefined;
    status = "running";
    const early = earlyEvents;
    earlyEvents = [];
    for (const params of early) {
      forward(params);
    }
  };

  return {
    start(): Promise<void> {
      if (status === "stopped") {
        return Promise.reject(new StoppedError(`channel "${channel}" is stopped: create a new handle`));
      }
      if (status !== "idle") {
        return Promise.reject(new Error(`channel "${channel}" is already started: call start() once`));
      }
      status = "starting";
      startPromise = start().catch((error: unknown) => {
        if (status === "starting") {
          reset(); // a throw before any of start's own cleanups ran (serveChannel)
        }
        throw error;
      });
      return startPromise;
    },

    stop(): void {
      if (status === "stopped") {
        return;
      }
      const wasRunning = status === "running";
      const pendingOpen = opening;
      status = "stopped";
      earlyEvents = [];
      unserve?.();
      unserve = undefined;
      const stopSubscription = unsubscribe;
      unsubscribe = undefined;
      callSafely(stopSubscription, "unsubscribe");
      if (wasRunning || pendingOpen !== undefined) {
        void closeInBackground(pendingOpen);
      }
    },

    async refresh(): Promise<void> {
      if (status === "starting") {
        await startPromise;
      }
      if (status === "stopped") {
        throw new StoppedError(`channel "${channel}" is stopped`);
      }
      if (status !== "running") {
        throw new Error(`channel "${channel}" is not started: call start() first`);
      }
      await connection.refreshChannel(channel);
    },

    getLocalRevision(): Revision {
      return localRevision;
    },
  };
}

/** Why an event is not `{topic, revision}` per the protocol, or undefined if it is. */
/** options.throttling goes on the wire as channel.open's options.throttling. */
function withThrottling(
  channelOptions: ChannelOptions | undefined,
  throttling: ThrottlingOptions | undefined,
): ChannelOptions | undefined {
  if (throttling === undefined) {
    return channelOptions;
  }
  if (channelOptions?.throttling !== undefined) {
    throw new TypeError(
      "createRevisionSync: throttling is given twice, as options.throttling and options.channelOptions.throttling: keep one",
    );
  }
  return { ...channelOptions, throttling };
}

function eventProblem(event: unknown): string | undefined {
  if (!isRecord(event)) {
    return `event: want a JSON object {topic, revision}, got ${event === null ? "null" : typeof event}`;
  }
  if (typeof event.topic !== "string" || event.topic.trim() === "") {
    return 'topic: want a non-empty string such as "app-config"';
  }
  if (!isCanonicalRevision(event.revision)) {
    return `revision: ${describe(event.revision)} is not a canonical decimal u64 string such as "42"`;
  }
  return undefined;
}

function describe(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  }
  return value === null ? "null" : typeof value;
}

/** Keeps a garbage event for the report without holding a huge one alive. */
function boundedEvent(event: unknown): unknown {
  try {
    const text = JSON.stringify(event);
    return text !== undefined && text.length > 1024 ? `${text.slice(0, 1024)}…` : event;
  } catch {
    return String(event);
  }
}

/** Unique among the channels of every window of one sidecar: windows do not coordinate names. */
function uniqueId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return crypto?.randomUUID?.() ?? `${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}
