import { type ConnectOptions, connect, type StateSyncClient } from "./client.js";
import { toErrorObject } from "./connection.js";
import { ErrorCodes, RpcError } from "./errors.js";
import {
  classifyMessage,
  isRecord,
  type JsonRpcErrorObject,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
  type Link,
  type RequestId,
} from "./link.js";
import { createMemoryLinkPair } from "./links/memory.js";
import { type ErrorNotification, type InitializeResult, PROTOCOL_VERSION, type Snapshot } from "./protocol.js";
import { type CompiledAccess, compileAccess, deniedCall, mayHear, type WindowAccess } from "./window-access.js";
import { readSnapshotAnswer, readWindowMessage, type WindowReading, type WindowRefusal } from "./window-message.js";

export { AccessDenied, type AccessRule, type WindowAccess } from "./window-access.js";

export interface AttachWindowOptions {
  /**
   * What this window may do. Absent: everything the protocol allows. Present: only what
   * the rules name (a rule left out allows nothing); a refused call is error -32010
   * naming the rule (docs/security.md, "Per-window access rules").
   */
  access?: WindowAccess;
}

export interface SidecarHostOptions {
  /** The link to the sidecar (usually createNodeLink). The host owns it from now on. */
  link: Link;
  /** Answers `getSnapshot {topic}` for topics of source `host`. */
  getSnapshot?: (topic: string) => Promise<Snapshot>;
  /**
   * Gets the sidecar's `error` notifications that no window owns, and the relay's own
   * reports (`phase: "protocol"`) of window messages it refused without being able to
   * answer them: a request-only method sent as a notification, a notification it could
   * not read, an invalidation of another window's channel.
   */
  onError?: (params: ErrorNotification) => void;
  /** Sent in the host's `initialize`. */
  client?: { name: string; version?: string };
}

export interface SidecarHost {
  /** The sidecar's answer to the host's `initialize`; windows are given the same one. */
  readonly ready: Promise<InitializeResult>;
  /**
   * Relays a window's link to the sidecar until the link closes or the returned function
   * is called; then the window's channels are closed in the sidecar and its link closed.
   *
   * The link may hand over each message as a JSON value or as its JSON text (a string):
   * text is read by the relay itself, which then also refuses a member named twice.
   * Either way the relay forwards only its own re-serialisation of what it checked
   * (docs/security.md, "What the relay guarantees to each window").
   */
  attachWindow(link: Link, options?: AttachWindowOptions): () => void;
  /** A client for the host process itself, attached like one more window. */
  connect(options?: ConnectOptions): Promise<StateSyncClient>;
  /** Detaches every window (closing their channels), then closes the sidecar link. */
  close(): void;
}

interface AttachedWindow {
  readonly link: Link;
  /** Channels this window opened (or is opening): the sidecar's calls for them come here. */
  readonly channels: Set<string>;
  /** Ids the relay gave the sidecar's requests to this window → the sidecar's own ids. */
  readonly sidecarIds: Map<number, { id: RequestId; method: string }>;
  nextId: number;
  detached: boolean;
  /** The window's access rules; undefined: unrestricted. */
  readonly access: CompiledAccess | undefined;
  unlisten: (() => void)[];
}

type PendingAtSidecar =
  | { kind: "window"; window: AttachedWindow; id: RequestId; method: string; channel?: string; claimed: boolean }
  | { kind: "host"; resolve(result: unknown): void; reject(error: Error): void };

/**
 * One sidecar, many windows. Each window speaks the protocol as if it had the sidecar to
 * itself; the relay rewrites request ids so that windows never collide, routes the
 * sidecar's `getSnapshot {channel}`, `apply` and `error` to the window that opened the
 * channel, answers `getSnapshot {topic}` itself, and closes a window's channels when the
 * window goes away, so that no engine outlives its window.
 */
/** A channel.list result cut down to the window's own channels. */
function ownChannels(window: AttachedWindow, result: unknown): unknown {
  if (!isRecord(result) || !Array.isArray(result.channels)) {
    return { channels: [] };
  }
  return {
    ...result,
    channels: result.channels.filter(
      (c: unknown) => isRecord(c) && typeof c.channel === "string" && window.channels.has(c.channel),
    ),
  };
}

export function createSidecarHost(options: SidecarHostOptions): SidecarHost {
  const sidecar = options.link;
  const windows = new Set<AttachedWindow>();
  const owners = new Map<string, AttachedWindow>();
  const pending = new Map<number, PendingAtSidecar>();
  let nextSidecarId = 1;
  let sidecarClosed = false;

  const sendToSidecar = (message: JsonRpcMessage): boolean => {
    if (sidecarClosed) {
      return false;
    }
    try {
      sidecar.send(message);
      return true;
    } catch {
      return false;
    }
  };

  const sendToWindow = (window: AttachedWindow, message: JsonRpcMessage): boolean => {
    if (window.detached) {
      return false;
    }
    try {
      window.link.send(message);
      return true;
    } catch {
      return false;
    }
  };

  const hostRequest = (method: string, params: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextSidecarId++;
      pending.set(id, { kind: "host", resolve, reject });
      if (!sendToSidecar({ jsonrpc: "2.0", id, method, params })) {
        pending.delete(id);
        reject(new RpcError(ErrorCodes.InternalError, `${method}: the sidecar link is closed`));
      }
    });

  const answerSidecar = (id: RequestId, outcome: { result: unknown } | { error: JsonRpcErrorObject }): void => {
    sendToSidecar({ jsonrpc: "2.0", id, ...outcome } as JsonRpcResponse);
  };

  const releaseChannel = (window: AttachedWindow, channel: string): void => {
    window.channels.delete(channel);
    if (owners.get(channel) === window) {
      owners.delete(channel);
    }
  };

  // ---- sidecar → windows ----

  const onSidecarResponse = (response: JsonRpcResponse): void => {
    const entry = typeof response.id === "number" ? pending.get(response.id) : undefined;
    if (entry === undefined || typeof response.id !== "number") {
      return;
    }
    pending.delete(response.id);
    if (entry.kind === "host") {
      if ("error" in response) {
        entry.reject(new RpcError(response.error.code, response.error.message, response.error.data));
      } else {
        entry.resolve(response.result);
      }
      return;
    }
    const { window, channel } = entry;
    const failed = "error" in response;
    if (entry.method === "channel.open" && channel !== undefined) {
      if (failed && entry.claimed) {
        releaseChannel(window, channel);
      } else if (!failed && window.detached) {
        // The window went away while its channel was opening: close it now it exists.
        void hostRequest("channel.close", { channel }).catch(() => {});
      }
    }
    if (entry.method === "channel.close" && channel !== undefined && !failed) {
      releaseChannel(window, channel);
    }
    if (entry.method === "channel.list" && window.access !== undefined && "result" in response) {
      // A window under rules sees its own channels only: the others' name other topics.
      sendToWindow(window, { ...response, id: entry.id, result: ownChannels(window, response.result) });
      return;
    }
    sendToWindow(window, { ...response, id: entry.id });
  };

  const onSidecarRequest = (request: JsonRpcRequest): void => {
    const params = isRecord(request.params) ? request.params : {};
    const channel = typeof params.channel === "string" ? params.channel : undefined;
    if (channel !== undefined) {
      const window = owners.get(channel);
      if (window !== undefined) {
        const id = window.nextId++;
        // Before sending: the answer may come at once.
        window.sidecarIds.set(id, { id: request.id, method: request.method });
        if (sendToWindow(window, { ...request, id })) {
          return;
        }
        window.sidecarIds.delete(id);
      }
      answerSidecar(request.id, {
        error: { code: ErrorCodes.UnknownChannel, message: `channel "${channel}": no window owns it any more` },
      });
      return;
    }
    if (request.method === "getSnapshot" && typeof params.topic === "string") {
      const getSnapshot = options.getSnapshot;
      if (getSnapshot === undefined) {
        answerSidecar(request.id, {
          error: {
            code: ErrorCodes.MethodNotFound,
            message: `getSnapshot for host topic "${params.topic}": the host was created without getSnapshot`,
          },
        });
        return;
      }
      const topic = params.topic;
      void (async () => {
        try {
          answerSidecar(request.id, { result: await getSnapshot(topic) });
        } catch (error) {
          answerSidecar(request.id, { error: toErrorObject(error) });
        }
      })();
      return;
    }
    answerSidecar(request.id, {
      error: { code: ErrorCodes.MethodNotFound, message: `method "${request.method}" is not handled by the host` },
    });
  };

  const onSidecarNotification = (message: JsonRpcMessage & { method: string; params?: unknown }): void => {
    const params = isRecord(message.params) ? message.params : {};
    if (message.method === "error" && typeof params.channel === "string") {
      const owner = owners.get(params.channel);
      if (owner !== undefined) {
        sendToWindow(owner, message);
      } else {
        options.onError?.(params as unknown as ErrorNotification);
      }
      return;
    }
    for (const window of windows) {
      if (window.access === undefined || mayHear(window.access, params.topic)) {
        sendToWindow(window, message);
      }
    }
    if (message.method === "error") {
      options.onError?.(params as unknown as ErrorNotification);
    }
  };

  sidecar.onMessage((value) => {
    const incoming = classifyMessage(value);
    switch (incoming.kind) {
      case "response":
        onSidecarResponse(incoming.message);
        return;
      case "request":
        onSidecarRequest(incoming.message);
        return;
      case "notification":
        onSidecarNotification(incoming.message);
        return;
      case "invalid":
        return; // the sidecar speaks the protocol; nothing useful to do with anything else
    }
  });

  // ---- windows → sidecar ----

  const ready = hostRequest("initialize", {
    protocolVersion: PROTOCOL_VERSION,
    ...(options.client === undefined ? {} : { client: options.client }),
  }) as Promise<InitializeResult>;
  ready.catch(() => {}); // a failure reaches whoever awaits ready or a window's initialize

  const answerWindow = (
    window: AttachedWindow,
    id: RequestId,
    outcome: { result: unknown } | { error: JsonRpcErrorObject },
  ) => {
    sendToWindow(window, { jsonrpc: "2.0", id, ...outcome } as JsonRpcResponse);
  };

  /** Tells a window, and the host, of a message the relay dropped without an answer. */
  const reportRefusal = (window: AttachedWindow, refusal: WindowRefusal, channel?: string): void => {
    const params: ErrorNotification = {
      phase: "protocol",
      ...(channel === undefined ? {} : { channel }),
      error: { code: refusal.code, message: `relay: ${refusal.message}` },
    };
    sendToWindow(window, { jsonrpc: "2.0", method: "error", params });
    options.onError?.(params);
  };

  const refuse = (window: AttachedWindow, refusal: WindowRefusal, channel?: string): void => {
    if (refusal.answer) {
      const call = typeof refusal.id === "number" ? window.sidecarIds.get(refusal.id) : undefined;
      if (call !== undefined && typeof refusal.id === "number") {
        // The sidecar must not wait a call timeout for an answer the relay will not pass on.
        window.sidecarIds.delete(refusal.id);
        answerSidecar(call.id, {
          error: {
            code: refusal.code,
            message: `the window's ${call.method} answer was refused by the relay: ${refusal.message}`,
          },
        });
      }
      reportRefusal(window, refusal, channel);
      return;
    }
    if (!refusal.notification && refusal.id !== null) {
      answerWindow(window, refusal.id, { error: { code: refusal.code, message: refusal.message } });
    } else {
      reportRefusal(window, refusal, channel);
    }
  };

  /** The channel a call names, when another window owns it: windows share the sidecar, not channels. */
  const someoneElsesChannel = (window: AttachedWindow, channel: string | undefined): boolean => {
    const owner = channel === undefined ? undefined : owners.get(channel);
    return owner !== undefined && owner !== window;
  };

  const onWindowNotification = (
    window: AttachedWindow,
    reading: Extract<WindowReading, { kind: "notification" }>,
  ): void => {
    // readWindowMessage lets only invalidate through as a notification.
    const channel = typeof reading.params?.channel === "string" ? reading.params.channel : undefined;
    const denial = window.access === undefined ? undefined : deniedCall(window.access, reading.method, reading.params);
    if (denial !== undefined) {
      const refusal: WindowRefusal = {
        kind: "refused",
        id: null,
        notification: true,
        answer: false,
        code: denial.code,
        message: `${denial.message}; dropped`,
        method: reading.method,
      };
      reportRefusal(window, refusal, channel);
      return;
    }
    if (someoneElsesChannel(window, channel)) {
      reportRefusal(
        window,
        {
          kind: "refused",
          id: null,
          notification: true,
          answer: false,
          code: ErrorCodes.UnknownChannel,
          message: `${reading.method}: channel ${JSON.stringify(channel)} belongs to another window; dropped`,
          method: reading.method,
        },
        channel,
      );
      return;
    }
    sendToSidecar({
      jsonrpc: "2.0",
      method: reading.method,
      ...(reading.params === undefined ? {} : { params: reading.params }),
    });
  };

  const onWindowRequest = (window: AttachedWindow, request: Extract<WindowReading, { kind: "request" }>): void => {
    if (request.method === "initialize") {
      // The sidecar takes one initialize; every window gets the answer the host got.
      ready.then(
        (result) => answerWindow(window, request.id, { result }),
        (error: unknown) => answerWindow(window, request.id, { error: toErrorObject(error) }),
      );
      return;
    }
    if (request.method === "shutdown") {
      answerWindow(window, request.id, {
        error: {
          code: ErrorCodes.InvalidRequest,
          message: "shutdown: windows share this sidecar; the host stops it (SidecarHost.close)",
        },
      });
      return;
    }
    const denial = window.access === undefined ? undefined : deniedCall(window.access, request.method, request.params);
    if (denial !== undefined) {
      answerWindow(window, request.id, { error: denial });
      return;
    }
    const channel = typeof request.params?.channel === "string" ? request.params.channel : undefined;
    let claimed = false;
    if (someoneElsesChannel(window, channel)) {
      const code = request.method === "channel.open" ? ErrorCodes.ChannelExists : ErrorCodes.UnknownChannel;
      answerWindow(window, request.id, {
        error: { code, message: `${request.method}: channel ${JSON.stringify(channel)} belongs to another window` },
      });
      return;
    }
    if (request.method === "channel.open" && channel !== undefined && owners.get(channel) === undefined) {
      // Claimed now, not on the answer: the sidecar calls getSnapshot/apply for the
      // channel before it answers channel.open.
      owners.set(channel, window);
      window.channels.add(channel);
      claimed = true;
    }
    const id = nextSidecarId++;
    pending.set(id, {
      kind: "window",
      window,
      id: request.id,
      method: request.method,
      claimed,
      ...(channel === undefined ? {} : { channel }),
    });
    const forwarded: JsonRpcRequest = {
      jsonrpc: "2.0",
      id,
      method: request.method,
      ...(request.params === undefined ? {} : { params: request.params }),
    };
    if (!sendToSidecar(forwarded)) {
      pending.delete(id);
      if (claimed && channel !== undefined) {
        releaseChannel(window, channel);
      }
      answerWindow(window, request.id, {
        error: { code: ErrorCodes.InternalError, message: `${request.method}: the sidecar is gone` },
      });
    }
  };

  const onWindowResponse = (window: AttachedWindow, response: Extract<WindowReading, { kind: "response" }>): void => {
    if (typeof response.id !== "number") {
      return;
    }
    const call = window.sidecarIds.get(response.id);
    if (call === undefined) {
      return;
    }
    window.sidecarIds.delete(response.id);
    let outcome = response.outcome;
    if (call.method === "getSnapshot" && "result" in outcome) {
      const snapshot = readSnapshotAnswer(outcome.result);
      outcome = snapshot.ok
        ? { result: snapshot.result }
        : {
            error: {
              code: snapshot.code,
              message: `the window's getSnapshot answer was refused by the relay: ${snapshot.message}`,
            },
          };
    }
    answerSidecar(call.id, outcome);
  };

  const detach = (window: AttachedWindow, closeChannels: boolean): void => {
    if (window.detached) {
      return;
    }
    window.detached = true;
    windows.delete(window);
    for (const stop of window.unlisten) {
      stop();
    }
    // The sidecar must not wait a call timeout for answers that will never come.
    for (const { id: sidecarId } of window.sidecarIds.values()) {
      answerSidecar(sidecarId, {
        error: { code: ErrorCodes.UnknownChannel, message: "the window closed before answering" },
      });
    }
    window.sidecarIds.clear();
    const opening = new Set<string>();
    for (const entry of pending.values()) {
      if (entry.kind === "window" && entry.window === window && entry.method === "channel.open" && entry.channel) {
        opening.add(entry.channel); // closed once its open is answered (onSidecarResponse)
      }
    }
    for (const channel of [...window.channels]) {
      releaseChannel(window, channel);
      if (closeChannels && !opening.has(channel)) {
        void hostRequest("channel.close", { channel }).catch(() => {});
      }
    }
    window.link.close();
  };

  const attachWindow = (link: Link, attachOptions: AttachWindowOptions = {}): (() => void) => {
    // Compiled before anything else: rules that cannot be read throw here, to the host.
    const access = attachOptions.access === undefined ? undefined : compileAccess(attachOptions.access);
    const window: AttachedWindow = {
      access,
      link,
      channels: new Set(),
      sidecarIds: new Map(),
      nextId: 1,
      detached: false,
      unlisten: [],
    };
    if (sidecarClosed) {
      link.close();
      return () => {};
    }
    windows.add(window);
    window.unlisten = [
      link.onMessage((value) => {
        // Read once; everything below acts on this reading and forwards only what it holds.
        const reading = readWindowMessage(value);
        switch (reading.kind) {
          case "request":
            onWindowRequest(window, reading);
            return;
          case "response":
            onWindowResponse(window, reading);
            return;
          case "notification":
            onWindowNotification(window, reading);
            return;
          case "refused":
            refuse(window, reading);
            return;
        }
      }),
      link.onClose(() => detach(window, true)),
    ];
    return () => detach(window, true);
  };

  sidecar.onClose((error) => {
    sidecarClosed = true;
    const reason = `the sidecar link closed${error ? `: ${error.message}` : ""}`;
    for (const entry of pending.values()) {
      if (entry.kind === "host") {
        entry.reject(new RpcError(ErrorCodes.InternalError, reason));
      }
    }
    pending.clear();
    for (const window of [...windows]) {
      detach(window, false); // closing its link rejects what the window still waits for
    }
  });

  return {
    ready,
    attachWindow,
    async connect(connectOptions?: ConnectOptions): Promise<StateSyncClient> {
      const [hostEnd, relayEnd] = createMemoryLinkPair();
      attachWindow(relayEnd);
      return connect(hostEnd, connectOptions);
    },
    close(): void {
      for (const window of [...windows]) {
        detach(window, true);
      }
      sidecar.close();
    },
  };
}
