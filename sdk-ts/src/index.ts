// The platform-free core. Links and appliers are subpath exports:
// @state-sync/sdk/node, /tauri, /message-port, /memory, /relay, /pinia, /zustand.

export { type ChannelHandlers, type ConnectOptions, connect, StateSyncClient } from "./client.js";
export {
  Connection,
  type ConnectionOptions,
  type ConnectionState,
  type NotificationHandler,
  type RequestHandler,
  type RequestOptions,
} from "./connection.js";
export { ConnectionClosedError, ErrorCodes, RequestTimeoutError, RpcError, StoppedError } from "./errors.js";
export { createLineDecoder, encodeLine, type LineDecoder, type LineDecoderOptions } from "./framing.js";
export type { JsonPatch, JsonPatchOperation } from "./json-patch.js";
export type {
  JsonRpcErrorObject,
  JsonRpcMessage,
  JsonRpcNotification,
  JsonRpcRequest,
  JsonRpcResponse,
  Link,
  RequestId,
} from "./link.js";
export { MAX_NAME_BYTES } from "./names.js";
export {
  type ApplyParams,
  type ChannelOptions,
  type ChannelRevision,
  type ChannelStatus,
  type DeltaRejection,
  type DeltasCapability,
  type ErrorNotification,
  type GetResult,
  type GetSnapshotParams,
  type InitializeResult,
  type InvalidateParams,
  type InvalidationThrottlingOptions,
  type OpenChannelParams,
  type OpenChannelResult,
  PROTOCOL_VERSION,
  type RetryOptions,
  type Revision,
  type SetResult,
  type Snapshot,
  type Source,
  type SyncPhase,
  type ThrottlingOptions,
} from "./protocol.js";
export { type RetryAttempt, RetryError, type RetryPolicy, withRetry } from "./retry.js";
export { compareRevisions, isCanonicalRevision, MAX_REVISION } from "./revision.js";
export {
  createRevisionSync,
  type InvalidationSubscriber,
  type Logger,
  type RevisionSyncHandle,
  type RevisionSyncOptions,
  type SnapshotApplier,
  type SnapshotProvider,
  type SyncErrorContext,
} from "./revision-sync.js";
