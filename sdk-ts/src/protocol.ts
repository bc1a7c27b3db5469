// Params and results of protocol v1, as docs/protocol.md defines them.

import type { JsonPatch } from "./json-patch.js";

export const PROTOCOL_VERSION = "1";

/** Canonical decimal u64 string: "0", "1", "42". */
export type Revision = string;

export type Source = "store" | "host" | "channel";

export type SyncPhase = "subscribe" | "getSnapshot" | "protocol" | "apply" | "refresh";

export interface InitializeResult {
  protocolVersion: string;
  server: { name: string; version: string };
  capabilities: {
    sources?: Source[];
    framing?: string;
    store?: string;
    defaultSource?: Source;
    maxMessageBytes?: number;
    maxChannels?: number;
    callTimeoutMs?: number;
    /** Present when the sidecar can send deltas and take `paths` (docs/protocol.md, Deltas). */
    deltas?: DeltasCapability;
    [key: string]: unknown;
  };
}

export interface DeltasCapability {
  version: number;
  /** Bytes of past data the sidecar keeps per topic to compute patches from; 0: every apply is full. */
  historyBytes: number;
  /** A patch is sent only when at most this fraction of the full data's size. */
  minSavingsRatio: number;
}

export interface RetryOptions {
  maxAttempts?: number;
  initialDelayMs?: number;
  multiplier?: number;
  maxDelayMs?: number;
  jitter?: number;
}

/**
 * Spacing of the refreshes that invalidations ask for: @statesync/core's
 * InvalidationThrottlingOptions, plus maxWaitMs (docs/lifecycle.md, Throttling).
 */
export interface ThrottlingOptions {
  /** Refresh once this long passed with no new event. */
  debounceMs?: number;
  /** Bound on the debounce's wait, from the first event of the burst; needs debounceMs. */
  maxWaitMs?: number;
  /** At most one refresh begins per this long. */
  throttleMs?: number;
  /** With throttleMs: the first event after a quiet window refreshes at once (default true). */
  leading?: boolean;
  /** With throttleMs: events inside a window cause one refresh when it ends (default true). */
  trailing?: boolean;
}

/** The name @statesync/core gives these options, so that code written for it compiles. */
export type InvalidationThrottlingOptions = ThrottlingOptions;

export interface ChannelOptions {
  callTimeoutMs?: number;
  /** Periodic refresh in ms: 0 or absent is off, otherwise at least 100 (the sidecar refuses less). */
  resyncIntervalMs?: number;
  retry?: RetryOptions;
  throttling?: ThrottlingOptions;
  /**
   * Applies may carry a JSON Patch from the channel's last applied data instead of the
   * data (needs the sidecar's `deltas` capability; createRevisionSync sets it for you).
   */
  deltas?: boolean;
  /**
   * RFC 6901 JSON Pointers (1 to 64, none ""): the channel receives the projection of the
   * data on them, and an apply only when one of them changed.
   */
  paths?: string[];
}

export interface OpenChannelParams {
  channel: string;
  topic: string;
  source?: Source;
  options?: ChannelOptions;
}

export interface OpenChannelResult {
  channel: string;
  topic: string;
  source: Source;
  localRevision: Revision;
}

export interface ChannelRevision {
  channel: string;
  localRevision: Revision;
}

export interface ChannelStatus {
  channel: string;
  topic: string;
  source: Source;
  state: "starting" | "running" | "stopped";
  localRevision: Revision;
  epoch?: string;
  counters: {
    refreshes: number;
    applies: number;
    ignoredEvents: number;
    errors: number;
    /** Applies sent as a delta (sidecars with the `deltas` capability). */
    deltas?: number;
    /** Deltas the window answered DeltaRejected (each followed by a full apply). */
    deltaRejections?: number;
  };
}

export interface InvalidateParams {
  topic: string;
  revision: Revision;
  epoch?: string;
  sourceId?: string;
  timestampMs?: number;
  channel?: string;
}

export interface Snapshot<T = unknown> {
  revision: Revision;
  data: T;
  epoch?: string;
}

export interface GetSnapshotParams {
  topic: string;
  channel?: string;
}

export interface ApplyParams<T = unknown> {
  channel: string;
  topic: string;
  revision: Revision;
  data: T;
  epoch?: string;
  /** The store topic was deleted (state.delete) at this revision; data is null. */
  deleted?: true;
  /**
   * Set when the sidecar sent a delta: the RFC 6902 patch that turned the data applied at
   * `baseRevision` into `data`. `data` is the full new data all the same (the SDK applied
   * the patch to its own copy); an applier that can patch in place may use these instead.
   */
  patch?: JsonPatch;
  baseRevision?: Revision;
}

/** `data` of the DeltaRejected (-32011) answer to a delta apply. */
export interface DeltaRejection {
  reason: "baseMismatch" | "patchFailed";
  /** The revision the window last applied on the channel, when it has one. */
  localRevision?: Revision;
}

export interface SetResult {
  topic: string;
  revision: Revision;
}

export interface GetResult<T = unknown> {
  topic: string;
  revision: Revision;
  /** The store's epoch (the memory store picks one per process). */
  epoch?: string;
  /** Absent for a topic never set, or deleted. */
  data?: T;
  /** The topic was deleted (state.delete) at this revision. */
  deleted?: true;
}

/** Params of the sidecar's `error` notification. */
export interface ErrorNotification {
  phase: SyncPhase;
  channel?: string;
  topic?: string;
  error: { code?: number; message: string; data?: unknown };
  sourceEvent?: unknown;
  localRevision?: Revision;
  eventRevision?: Revision;
  snapshotRevision?: Revision;
  attempt?: number;
  willRetry?: boolean;
  nextDelayMs?: number;
}
