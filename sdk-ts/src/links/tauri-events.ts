// What createTauriRelay (the owner webview) and connectTauriWindow (every window) say to
// each other over Tauri's event system. Three event names, all in the `state-sync://`
// namespace so that an app's own events never collide with them:
//
//   TO_OWNER   window → owner: `hello` (broadcast with emit, the owner is not known yet),
//              then `messages` and `goodbye` (emitTo the owner's label).
//   TO_WINDOW  owner → one window (emitTo its label): `welcome`, `messages`, `closed`.
//   OWNER      owner → every window (emit): `ready` when a relay starts, `closed` when it stops.
//
// A window's `session` is a fresh random id per connectTauriWindow() call and its `page` one
// per page load (a page may connect more than once), so a reloaded page (same label, new
// JavaScript realm) is told apart from the page it replaced; the owner's `owner` id is fresh
// per relay, so a window notices when the owner it talked to was replaced.

export const TO_OWNER = "state-sync://to-owner";
export const TO_WINDOW = "state-sync://to-window";
export const OWNER = "state-sync://owner";

export type WindowEnvelope =
  | { kind: "hello"; label: string; page: string; session: string }
  | { kind: "messages"; label: string; session: string; owner: string; messages: unknown[] }
  | { kind: "goodbye"; label: string; session: string; owner: string };

export type OwnerEnvelope =
  | { kind: "welcome"; owner: string; ownerLabel: string; session: string }
  | { kind: "messages"; owner: string; session: string; messages: unknown[] }
  | { kind: "closed"; owner: string; session: string; reason: string };

export interface OwnerAnnouncement {
  kind: "ready" | "closed";
  owner: string;
  ownerLabel: string;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const strings = (value: Record<string, unknown>, ...keys: string[]): boolean =>
  keys.every((key) => typeof value[key] === "string");

/** The envelope a window sent, or undefined for anything else (another app's event, garbage). */
export function readWindowEnvelope(value: unknown): WindowEnvelope | undefined {
  if (!isRecord(value) || !strings(value, "label", "session")) {
    return undefined;
  }
  switch (value.kind) {
    case "hello":
      return strings(value, "page") ? (value as WindowEnvelope) : undefined;
    case "messages":
      return strings(value, "owner") && Array.isArray(value.messages) ? (value as WindowEnvelope) : undefined;
    case "goodbye":
      return strings(value, "owner") ? (value as WindowEnvelope) : undefined;
    default:
      return undefined;
  }
}

/** The envelope the owner sent, or undefined for anything else. */
export function readOwnerEnvelope(value: unknown): OwnerEnvelope | undefined {
  if (!isRecord(value) || !strings(value, "owner", "session")) {
    return undefined;
  }
  switch (value.kind) {
    case "welcome":
      return strings(value, "ownerLabel") ? (value as OwnerEnvelope) : undefined;
    case "messages":
      return Array.isArray(value.messages) ? (value as OwnerEnvelope) : undefined;
    case "closed":
      return strings(value, "reason") ? (value as OwnerEnvelope) : undefined;
    default:
      return undefined;
  }
}

export function readAnnouncement(value: unknown): OwnerAnnouncement | undefined {
  return isRecord(value) && (value.kind === "ready" || value.kind === "closed") && strings(value, "owner", "ownerLabel")
    ? (value as unknown as OwnerAnnouncement)
    : undefined;
}

/** A random id for a page load or a relay: unique enough to never repeat within an app run. */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Sends messages in order, in batches. Two `emitTo` calls in flight may reach their
 * listener in either order (each is its own IPC call), so the next batch leaves only once
 * the previous one was handed over; whatever was queued meanwhile goes in one event, which
 * keeps a burst from costing one IPC round trip per message.
 */
export interface BatchSender {
  push(message: unknown): void;
  /** Drops what is queued and sends nothing more. */
  stop(): void;
}

export function createBatchSender(
  emitBatch: (messages: unknown[]) => Promise<void>,
  onFailure: (error: unknown) => void,
): BatchSender {
  let queue: unknown[] = [];
  let sending = false;
  let stopped = false;
  const flush = (): void => {
    if (sending || stopped || queue.length === 0) {
      return;
    }
    const batch = queue;
    queue = [];
    sending = true;
    emitBatch(batch).then(
      () => {
        sending = false;
        flush();
      },
      (error: unknown) => {
        sending = false;
        stopped = true;
        queue = [];
        onFailure(error);
      },
    );
  };
  return {
    push(message) {
      if (stopped) {
        return;
      }
      queue.push(message);
      flush();
    },
    stop() {
      stopped = true;
      queue = [];
    },
  };
}

/** The page is going away (reload, navigation, close): the last moment to say goodbye. */
export function onPageHide(handler: () => void): () => void {
  const target = globalThis as unknown as {
    addEventListener?: (type: string, listener: () => void) => void;
    removeEventListener?: (type: string, listener: () => void) => void;
  };
  if (typeof target.addEventListener !== "function") {
    return () => {};
  }
  target.addEventListener("pagehide", handler);
  return () => target.removeEventListener?.("pagehide", handler);
}
