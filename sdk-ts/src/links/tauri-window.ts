import { emit, emitTo, listen, type UnlistenFn } from "@tauri-apps/api/event";
import { getCurrentWindow } from "@tauri-apps/api/window";
import { type ConnectOptions, connect, type StateSyncClient } from "../client.js";
import { ConnectionClosedError } from "../errors.js";
import type { Link } from "../link.js";
import { LinkListeners } from "../link-listeners.js";
import {
  createBatchSender,
  OWNER,
  type OwnerEnvelope,
  onPageHide,
  randomId,
  readAnnouncement,
  readOwnerEnvelope,
  TO_OWNER,
  TO_WINDOW,
  type WindowEnvelope,
} from "./tauri-events.js";

export interface TauriWindowOptions extends ConnectOptions {
  /**
   * How long to wait for an owner (a webview running `createTauriRelay`) to answer; 10 s by
   * default. `Infinity` waits until one starts: what a window reconnecting after its owner
   * closed wants.
   */
  ownerTimeoutMs?: number;
}

/**
 * Connects this window to the sidecar that the owner webview runs (`createTauriRelay`),
 * over Tauri events. Resolves to the same `StateSyncClient` that `connect()` gives, so
 * `createRevisionSync({ connection, … })` works unchanged. Works in every window, the
 * owner's too, and in a window that starts before the owner (it waits for the owner's
 * `ready`). When the owner goes away (closed, reloaded, its sidecar died) the client
 * closes with a `ConnectionClosedError`: call `connectTauriWindow` again to reconnect once
 * a new owner starts.
 */
export async function connectTauriWindow(options: TauriWindowOptions = {}): Promise<StateSyncClient> {
  const { ownerTimeoutMs, ...connectOptions } = options;
  return connect(await createTauriWindowLink(ownerTimeoutMs ?? 10_000), connectOptions);
}

async function createTauriWindowLink(ownerTimeoutMs: number): Promise<Link> {
  const label = getCurrentWindow().label;
  const page = pageId();
  const session = randomId();
  const listeners = new LinkListeners();
  const hello = (): Promise<void> => emit(TO_OWNER, { kind: "hello", label, page, session } satisfies WindowEnvelope);

  let owner: { id: string; label: string } | undefined;
  let welcomed: (value: { id: string; label: string }) => void = () => {};
  const welcome = new Promise<{ id: string; label: string }>((resolve) => {
    welcomed = resolve;
  });
  let closed = false;
  let stopDestroyed: Promise<UnlistenFn> | undefined;
  const stops: Promise<UnlistenFn>[] = [];
  let sender: ReturnType<typeof createBatchSender> | undefined;

  const finish = (error?: Error): void => {
    if (closed) {
      return;
    }
    closed = true;
    sender?.stop();
    stopPageHide();
    for (const stop of [...stops, ...(stopDestroyed === undefined ? [] : [stopDestroyed])]) {
      void stop.then((unlisten) => unlisten()).catch(() => {});
    }
    listeners.closed(error);
  };
  const ownerGone = (why: string): void =>
    finish(
      new ConnectionClosedError(
        `the state-sync owner window "${owner?.label}" ${why}: call connectTauriWindow() again to reconnect once a new owner starts`,
      ),
    );

  const onEnvelope = (envelope: OwnerEnvelope): void => {
    if (envelope.session !== session || closed) {
      return; // meant for another page load of this window
    }
    if (envelope.kind === "welcome") {
      if (owner === undefined) {
        owner = { id: envelope.owner, label: envelope.ownerLabel };
        welcomed(owner);
      }
      return;
    }
    if (owner === undefined || envelope.owner !== owner.id) {
      return;
    }
    if (envelope.kind === "closed") {
      finish(new ConnectionClosedError(`${envelope.reason}: call connectTauriWindow() again to reconnect`));
      return;
    }
    for (const message of envelope.messages) {
      listeners.deliver(message);
    }
  };

  // `target: label` keeps out what the owner emits to other windows: a listener without a
  // target hears every emitTo, whatever label it names.
  stops.push(
    listen(
      TO_WINDOW,
      (event) => {
        const envelope = readOwnerEnvelope(event.payload);
        if (envelope !== undefined) {
          onEnvelope(envelope);
        }
      },
      { target: label },
    ),
    listen(
      OWNER,
      (event) => {
        const announcement = readAnnouncement(event.payload);
        if (announcement === undefined || closed) {
          return;
        }
        if (owner === undefined) {
          if (announcement.kind === "ready") {
            void hello().catch(() => {}); // an owner started after our first hello
          }
        } else if (announcement.owner === owner.id && announcement.kind === "closed") {
          ownerGone("closed");
        } else if (announcement.owner !== owner.id && announcement.kind === "ready") {
          ownerGone("was replaced by a new owner (it reloaded)");
        }
      },
      { target: label },
    ),
  );
  // Says goodbye on reload or close, so the owner closes this page's channels at once;
  // the owner's `tauri://destroyed` listener and the next page's hello cover a lost goodbye.
  let link: Link | undefined;
  const stopPageHide = onPageHide(() => (link === undefined ? finish() : link.close()));
  try {
    await Promise.all(stops);
    await hello();
  } catch (error) {
    finish();
    throw new Error(
      `connectTauriWindow: Tauri events failed in window "${label}": ${String(error)}: ` +
        "give every window core:event:default in a capability (docs/tauri.md, Capabilities)",
    );
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    if (Number.isFinite(ownerTimeoutMs)) {
      timer = setTimeout(
        () =>
          reject(
            new ConnectionClosedError(
              `window "${label}": no state-sync owner answered within ${ownerTimeoutMs} ms: ` +
                "call createTauriRelay() in the owner window, and give every window the event permissions " +
                "(core:event:default) in a capability (see docs/tauri.md)",
            ),
          ),
        ownerTimeoutMs,
      );
    }
  });
  let known: { id: string; label: string };
  try {
    known = await Promise.race([welcome, timeout]);
  } catch (error) {
    finish();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  if (known.label !== label) {
    stopDestroyed = listen("tauri://destroyed", () => ownerGone("closed"), {
      target: { kind: "Window", label: known.label },
    });
    await stopDestroyed;
  }
  sender = createBatchSender(
    (messages) =>
      emitTo(known.label, TO_OWNER, {
        kind: "messages",
        label,
        session,
        owner: known.id,
        messages,
      } satisfies WindowEnvelope),
    (error) => finish(new ConnectionClosedError(`window "${label}": sending to the owner failed: ${String(error)}`)),
  );
  const batches = sender;

  link = {
    send(message) {
      if (closed) {
        throw new ConnectionClosedError(`window "${label}": the link to the state-sync owner is closed`);
      }
      batches.push(message);
    },
    onMessage: listeners.onMessage,
    onClose: listeners.onClose,
    close() {
      if (closed) {
        return;
      }
      void emitTo(known.label, TO_OWNER, {
        kind: "goodbye",
        label,
        session,
        owner: known.id,
      } satisfies WindowEnvelope).catch(() => {});
      finish();
    },
  };
  if (closed) {
    // The owner went away between its welcome and now.
    throw new ConnectionClosedError(`window "${label}": the state-sync owner went away while connecting`);
  }
  return link;
}

/**
 * This page load's id, shared by every connection the page makes (kept on the page's global
 * object, so two copies of the SDK in one page agree); a reload starts a new realm, so a
 * new id.
 */
function pageId(): string {
  const key = Symbol.for("@state-sync/sdk tauri page");
  const global = globalThis as unknown as Record<symbol, string | undefined>;
  global[key] ??= randomId();
  return global[key];
}
