import type { StateSyncClient } from "./client.js";
import { toErrorObject } from "./connection.js";
import { ErrorCodes, RpcError, StoppedError } from "./errors.js";
import { type JsonPatch, parsePointer } from "./json-patch.js";
import { isRecord } from "./link.js";
import { cutToBytes, MAX_NAME_BYTES, topicProblem, utf8Length } from "./names.js";
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
   * deleted (state.delete), with data null. `patch` and `baseRevision` are there when the
   * sidecar sent a delta: `data` is the full new data all the same, and the patch turns the
   * data applied at `baseRevision` into it, for appliers that can patch in place.
   */
  apply(envelope: {
    revision: Revision;
    data: T;
    epoch?: string;
    deleted?: true;
    patch?: JsonPatch;
    baseRevision?: Revision;
  }): void | Promise<void>;
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
 * The seed's SyncErrorContext. `error` is what was thrown: by the window's provider or
 * applier (phases `getSnapshot`, `apply`: the value itself, so `instanceof` and its own
 * fields work, even though the sidecar reported the failure), by the subscriber or
 * shouldRefresh; for the sidecar's other reports (a timeout, a bad snapshot) it is an
 * RpcError carrying the wire code, message and data.
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
  /**
   * Let the sidecar send only what changed, as a JSON Patch (docs/protocol.md, Deltas).
   * Default true; used only when the sidecar has the `deltas` capability. The applier
   * still gets the full data; the SDK keeps a copy of the channel's data to patch.
   */
  deltas?: boolean;
  /**
   * Sync only these parts of the topic: RFC 6901 JSON Pointers such as "/settings/theme"
   * (1 to 64, none ""). The applier gets the projection of the data on them, and an apply
   * only when one of them changed. Needs the sidecar's `deltas` capability.
   */
  paths?: readonly string[];
  /**
   * Hand the applier deeply frozen data (Object.freeze) instead of data of its own: for
   * state libraries that never change their state in place (Redux, Zustand, React state);
   * not for Vue, Pinia, Valtio or Svelte runes, which do. With deltas the SDK then keeps
   * no copy of the channel's data, so a delta costs this window the size of the change,
   * not of the state. A change to the data throws a TypeError. Default false.
   */
  freezeData?: boolean;
}

/**
 * With a provider, the window itself answers the snapshots (source `channel`); without
 * one, the topic's source does (`store` or `host`, or the sidecar's default when absent).
 */
export type RevisionSyncOptions<T> = CommonOptions<T> &
  ({ provider: SnapshotProvider<T>; source?: "channel" } | { provider?: undefined; source?: "store" | "host" });

type Status = "idle" | "starting" | "running" | "stopped";

/** Every option createRevisionSync knows: any other is a mistake (or a peer's option we lack). */
const knownOptions = new Set([
  "topic",
  "connection",
  "applier",
  "subscriber",
  "provider",
  "shouldRefresh",
  "logger",
  "onError",
  "channel",
  "source",
  "channelOptions",
  "throttling",
  "deltas",
  "paths",
  "freezeData",
]);

/** What a provider or applier threw, kept until the sidecar's report of that failure arrives. */
interface Thrown {
  phase: "getSnapshot" | "apply";
  code: number;
  message: string;
  value: unknown;
}

/** Bounds the thrown values kept when no report comes for them (the sidecar timed out first). */
const maxThrownKept = 16;

/** Checks the options before anything starts: each mistake says what to pass instead. */
function checkOptions(options: RevisionSyncOptions<unknown>): void {
  if (!isRecord(options)) {
    throw new TypeError("createRevisionSync: pass an options object { topic, connection, applier }");
  }
  const unknown = Object.keys(options).filter((key) => !knownOptions.has(key));
  if (unknown.length > 0) {
    throw new TypeError(
      `createRevisionSync: unknown option${unknown.length > 1 ? "s" : ""} ${unknown.map((key) => JSON.stringify(key)).join(", ")}; known: ${[...knownOptions].join(", ")}`,
    );
  }
  const connection = (options as { connection?: unknown }).connection;
  if (connection === undefined || connection === null) {
    throw new TypeError(
      "createRevisionSync: options.connection is missing: pass the client that connect(link) resolves with, createRevisionSync({ topic, connection: client, applier })",
    );
  }
  if (typeof (connection as { serveChannel?: unknown }).serveChannel !== "function") {
    throw new TypeError(
      "createRevisionSync: options.connection is not a StateSyncClient: pass the client that connect(link) resolves with",
    );
  }
  if (typeof options.topic !== "string" || options.topic.trim() === "") {
    throw new TypeError(
      `createRevisionSync: options.topic must be a non-empty string such as "app-config", got ${JSON.stringify(options.topic) ?? "undefined"}`,
    );
  }
  if (!isRecord(options.applier) || typeof options.applier.apply !== "function") {
    throw new TypeError("createRevisionSync: options.applier must be an object with apply({ revision, data })");
  }
  if (options.deltas !== undefined && typeof options.deltas !== "boolean") {
    throw new TypeError(`createRevisionSync: options.deltas is ${JSON.stringify(options.deltas)}: use true or false`);
  }
  if (options.paths !== undefined) {
    checkPaths(options.paths);
  }
  if (options.freezeData !== undefined && typeof options.freezeData !== "boolean") {
    throw new TypeError(
      `createRevisionSync: options.freezeData is ${JSON.stringify(options.freezeData)}: use true or false`,
    );
  }
}

/** Largest number of pointers in `paths`, as the sidecar allows. */
const maxPaths = 64;

/** The sidecar's checks of channel.open's `paths`, made before the channel opens. */
function checkPaths(paths: unknown): void {
  if (!Array.isArray(paths) || paths.length === 0 || paths.length > maxPaths) {
    throw new TypeError(
      `createRevisionSync: options.paths must list 1 to ${maxPaths} JSON Pointers such as ["/settings/theme"]; leave it out to sync the whole topic`,
    );
  }
  const seen = new Set<string>();
  for (const path of paths as unknown[]) {
    if (path === "") {
      throw new TypeError('createRevisionSync: options.paths holds "", the whole document: leave paths out instead');
    }
    try {
      parsePointer(path as string);
    } catch (error) {
      throw new TypeError(`createRevisionSync: options.paths: ${(error as Error).message}`);
    }
    if (seen.has(path as string)) {
      throw new TypeError(`createRevisionSync: options.paths lists ${JSON.stringify(path)} twice: list it once`);
    }
    seen.add(path as string);
  }
}

/**
 * The seed's createRevisionSync, with the engine in the sidecar. start() subscribes the
 * subscriber, then opens the channel (the sidecar fetches and applies the first
 * snapshot before answering). Events are validated, filtered and forwarded as
 * `invalidate {channel}`; the sidecar's `getSnapshot` is answered by the provider and its
 * `apply` runs the applier. stop() is synchronous: from its return on, no apply reaches
 * the applier, even one already on the wire.
 */
export function createRevisionSync<T>(options: RevisionSyncOptions<T>): RevisionSyncHandle {
  checkOptions(options as RevisionSyncOptions<unknown>);
  const { topic, connection, applier, subscriber, provider, shouldRefresh, logger, onError } = options;
  if (provider !== undefined && options.source !== undefined && options.source !== "channel") {
    throw new TypeError(`createRevisionSync: a provider makes the source "channel", not "${options.source}"`);
  }
  const source = provider !== undefined ? "channel" : options.source;
  const channel = options.channel ?? defaultChannel(topic);
  const baseOptions = withThrottling(options.channelOptions, options.throttling);
  checkGivenOnce(baseOptions, options as RevisionSyncOptions<unknown>);

  let status: Status = "idle";
  let localRevision: Revision = "0";
  let unsubscribe: (() => void) | undefined;
  let unserve: (() => void) | undefined;
  /** The channel.open in flight, for stop() to close the channel it may still open. */
  let opening: Promise<unknown> | undefined;
  let startPromise: Promise<void> | undefined;
  /** Events that came before the channel was open in the sidecar, sent once it is. */
  let earlyEvents: InvalidateParams[] = [];
  /** Oldest first: the sidecar reports failures in the order it saw them. */
  let thrown: Thrown[] = [];

  const report = (context: SyncErrorContext): void => {
    const full: SyncErrorContext = { topic, channel, localRevision, ...context };
    logger?.error?.(`state-sync ${channel}: ${full.phase} failed`, full);
    try {
      onError?.(full);
    } catch (error) {
      logger?.error?.(`state-sync ${channel}: onError threw`, { error });
    }
  };

  const reportFromSidecar = (params: ErrorNotification): void => {
    const { error } = params;
    const own = takeThrown(params);
    if (own !== undefined) {
      report({ ...params, error: own.value });
      return;
    }
    const cause =
      typeof error.code === "number"
        ? new RpcError(error.code, error.message, error.data)
        : new Error(String(error.message), { cause: error.data });
    report({ ...params, error: cause });
  };

  /** Remembers what the provider or applier threw, and answers the sidecar with its wire form. */
  const keepThrown = (phase: Thrown["phase"], value: unknown): never => {
    const { code, message } = toErrorObject(value);
    thrown.push({ phase, code, message, value });
    if (thrown.length > maxThrownKept) {
      thrown.shift();
    }
    throw value;
  };

  /**
   * The thrown value a sidecar report is about: same phase and code, and the sidecar's
   * message quotes ours ("the host answered apply with error -32603: <message>").
   */
  const takeThrown = (params: ErrorNotification): Thrown | undefined => {
    const index = thrown.findIndex(
      (entry) =>
        entry.phase === params.phase &&
        entry.code === params.error.code &&
        typeof params.error.message === "string" &&
        params.error.message.includes(entry.message),
    );
    return index === -1 ? undefined : thrown.splice(index, 1)[0];
  };

  const forward = (params: InvalidateParams): void => {
    try {
      connection.invalidate(params);
    } catch (error) {
      // A member the sidecar would refuse (a numeric sourceId) is the event's fault.
      const phase = error instanceof RpcError && error.code === ErrorCodes.InvalidParams ? "protocol" : "refresh";
      report({ phase, error, sourceEvent: params, eventRevision: params.revision });
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
    try {
      await applier.apply({
        revision: params.revision,
        data: params.data as T,
        ...(params.epoch === undefined ? {} : { epoch: params.epoch }),
        ...(params.deleted === true ? { deleted: true as const } : {}),
        ...(params.patch === undefined ? {} : { patch: params.patch }),
        ...(params.baseRevision === undefined ? {} : { baseRevision: params.baseRevision }),
      });
    } catch (error) {
      keepThrown("apply", error);
    }
    localRevision = params.revision;
  };

  const serveSnapshot = async (): Promise<Snapshot> => {
    if (provider === undefined || status === "stopped") {
      throw new RpcError(ErrorCodes.UnknownChannel, `channel "${channel}" is stopped or has no provider`);
    }
    try {
      return await provider.getSnapshot();
    } catch (error) {
      return keepThrown("getSnapshot", error);
    }
  };

  /** Returns to idle after a failed start, leaving nothing behind. */
  const reset = (): void => {
    const stopSubscription = unsubscribe;
    unsubscribe = undefined;
    unserve?.();
    unserve = undefined;
    opening = undefined;
    earlyEvents = [];
    thrown = [];
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
      ...(options.freezeData === true ? { freezeData: true } : {}),
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

    // Read now, not when the handle was made: a test's fake connection may answer later.
    const channelOptions = withDeltas(baseOptions, options, connection.server?.capabilities?.deltas !== undefined);
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
      if (status !== "idle" && startPromise !== undefined) {
        // Started already (React StrictMode runs effects twice): the same start, not a second one.
        return startPromise;
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
      thrown = [];
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
        // As the seed: refreshes fired on focus or timers after stop() are not errors.
        logger?.debug?.(`state-sync ${channel}: refresh skipped (stopped)`);
        return;
      }
      if (status !== "running") {
        // Unlike the seed, which fetches a snapshot then: here the channel exists in the
        // sidecar only once start() has opened it.
        throw new Error(`channel "${channel}" is not started: call start() first, refresh() only after it`);
      }
      try {
        await connection.refreshChannel(channel);
      } catch (error) {
        if ((status as Status) === "stopped") {
          return; // stopped while the refresh was in flight: the sidecar answered -32001
        }
        throw error;
      }
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

/** Each of deltas and paths is given once: as an option, or in channelOptions. */
function checkGivenOnce(channelOptions: ChannelOptions | undefined, options: RevisionSyncOptions<unknown>): void {
  for (const name of ["deltas", "paths"] as const) {
    if (options[name] !== undefined && channelOptions?.[name] !== undefined) {
      throw new TypeError(
        `createRevisionSync: ${name} is given twice, as options.${name} and options.channelOptions.${name}: keep one`,
      );
    }
  }
}

/**
 * options.deltas and options.paths go on the wire as channel.open's options. `deltas` only
 * when the sidecar says it can (an older one refuses an option it does not know); `paths`
 * has no meaning without the capability, so asking for it there is a mistake to report.
 */
function withDeltas(
  channelOptions: ChannelOptions | undefined,
  { deltas, paths }: { deltas?: boolean | undefined; paths?: readonly string[] | undefined },
  capable: boolean,
): ChannelOptions | undefined {
  if (paths !== undefined && !capable) {
    throw new RpcError(
      ErrorCodes.InvalidParams,
      "createRevisionSync: options.paths needs a sidecar with the deltas capability (initialize's capabilities.deltas): update statesync-sidecar, or leave paths out",
    );
  }
  const on = capable && (deltas ?? channelOptions?.deltas ?? true);
  const extra: ChannelOptions = {
    ...(on ? { deltas: true } : {}),
    ...(paths === undefined ? {} : { paths: [...paths] }),
  };
  const { deltas: _given, ...rest } = channelOptions ?? {};
  const merged = { ...rest, ...extra };
  return Object.keys(merged).length === 0 ? undefined : merged;
}

function eventProblem(event: unknown): string | undefined {
  if (!isRecord(event)) {
    return `event: want a JSON object {topic, revision}, got ${event === null ? "null" : typeof event}`;
  }
  const topicError = topicProblem(event.topic);
  if (topicError !== undefined) {
    return topicError;
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

/** The topic and a unique id; a long topic is cut so that the name stays within MAX_NAME_BYTES. */
function defaultChannel(topic: string): string {
  const suffix = `#${uniqueId()}`;
  return `${cutToBytes(topic, MAX_NAME_BYTES - utf8Length(suffix))}${suffix}`;
}

/** Unique among the channels of every window of one sidecar: windows do not coordinate names. */
function uniqueId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return crypto?.randomUUID?.() ?? `${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}
