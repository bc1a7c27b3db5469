// Params and results of protocol v1, as docs/protocol.md defines them.

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
    [key: string]: unknown;
  };
}

export interface RetryOptions {
  maxAttempts?: number;
  initialDelayMs?: number;
  multiplier?: number;
  maxDelayMs?: number;
  jitter?: number;
}

export interface ChannelOptions {
  callTimeoutMs?: number;
  /** Periodic refresh in ms: 0 or absent is off, otherwise at least 100 (the sidecar refuses less). */
  resyncIntervalMs?: number;
  retry?: RetryOptions;
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
  counters: { refreshes: number; applies: number; ignoredEvents: number; errors: number };
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
  /** Absent for a topic never set. */
  data?: T;
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
