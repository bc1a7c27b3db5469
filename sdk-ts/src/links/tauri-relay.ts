import { emit, emitTo, listen, type UnlistenFn } from "@tauri-apps/api/event";
import { getCurrentWindow } from "@tauri-apps/api/window";
import { Child } from "@tauri-apps/plugin-shell";
import type { ConnectOptions, StateSyncClient } from "../client.js";
import { ConnectionClosedError } from "../errors.js";
import type { Link } from "../link.js";
import { LinkListeners } from "../link-listeners.js";
import type { ErrorNotification, InitializeResult, InvalidateParams, Snapshot } from "../protocol.js";
import { createSidecarHost, type WindowAccess } from "../relay.js";
import { createTauriLink, type TauriLink, type TauriLinkOptions } from "./tauri.js";
import {
  createBatchSender,
  OWNER,
  type OwnerAnnouncement,
  type OwnerEnvelope,
  onPageHide,
  randomId,
  readWindowEnvelope,
  TO_OWNER,
  TO_WINDOW,
} from "./tauri-events.js";

export interface TauriRelayOptions extends TauriLinkOptions {
  /**
   * Answers `getSnapshot {topic}` for topics of source `host`, once per topic per burst
   * however many windows sync it; typically `(topic) => invoke("state_snapshot", { topic })`.
   */
  getSnapshot?: (topic: string) => Promise<Snapshot>;
  /**
   * A Tauri event whose payload is `{topic, revision}` (what `invalidate` takes): the relay
   * forwards each one to the sidecar, so Rust can say "topic changed" with `app.emit(…)`.
   */
  invalidateEvent?: string;
  /** Gets the sidecar's `error` notifications that no window owns. */
  onError?: (params: ErrorNotification) => void;
  /**
   * The `localStorage` key that keeps the sidecar's process id, so that a new owner page
   * (the owner reloaded, or its window was closed and opened again) ends the sidecar the
   * previous one left running; "state-sync/sidecar-pid" by default.
   */
  pidStorageKey?: string;
  /**
   * Per-window access rules, by window label (docs/security.md, "Per-window access
   * rules"): undefined lets the window do everything. The label is the one the window
   * names in its hello, so the rules hold against pages that use the SDK as shipped, not
   * against script that forges the owner's events; give untrusted windows no
   * core:event permission to the owner instead.
   */
  windowAccess?: (label: string) => WindowAccess | undefined;
}

export interface TauriRelay {
  /** The sidecar's answer to `initialize`, once it has started. */
  readonly ready: Promise<InitializeResult>;
  /** The shell plugin link to the sidecar. */
  readonly link: TauriLink;
  /** Labels of the windows served now. */
  windows(): string[];
  /** A client for the owner's own code, attached like one more window. */
  connect(options?: ConnectOptions): Promise<StateSyncClient>;
  /** Tells every window the owner is gone, closes their channels and stops the sidecar. */
  close(): void;
}

/** One connectTauriWindow() of one page load of one window. */
interface Session {
  readonly label: string;
  /** The page load it belongs to: a new one in the same window means the window reloaded. */
  readonly page: string;
  readonly id: string;
  readonly link: Link & { deliver(messages: unknown[]): void };
  /** Set once the relay attached the link; ends the session (closes its channels). */
  detach: () => void;
}

/**
 * Runs in the one webview that owns the sidecar (a hidden window that lives as long as the
 * app, or the main window): spawns the bundled sidecar through the shell plugin, runs the
 * relay (`createSidecarHost`) over it, and serves every window that calls
 * `connectTauriWindow()` over Tauri events. A window's channels are closed in the sidecar
 * when the window is destroyed (`tauri://destroyed`), when its page reloads (the new page's
 * `hello` names another page load) or when the connection says goodbye; the relay then
 * drops the window's pending calls, so nothing is applied for a session after it ended.
 */
export async function createTauriRelay(options: TauriRelayOptions = {}): Promise<TauriRelay> {
  const ownerLabel = getCurrentWindow().label;
  const owner = randomId();
  const storage = localStorageOrUndefined();
  const pidKey = options.pidStorageKey ?? "state-sync/sidecar-pid";

  // The shell plugin keeps a child until it exits or the app does: a reloaded or destroyed
  // owner page leaves its sidecar running, holding the store file's lock. End it first.
  // localStorage, not sessionStorage: a new owner window has a fresh sessionStorage, and
  // every webview of the app shares one localStorage. kill() acts only on a child the
  // plugin spawned in this run of the app, so an id from an earlier run is harmless.
  const previous = storage?.getItem(pidKey);
  if (previous !== null && previous !== undefined && /^\d+$/.test(previous)) {
    await new Child(Number(previous)).kill().catch(() => {});
  }
  const program = options.program ?? "binaries/statesync-sidecar";
  const link = await createTauriLink(options).catch((error: unknown) => {
    throw new Error(
      `createTauriRelay: spawning ${program} ${JSON.stringify(options.args ?? [])} failed: ${String(error)}: ` +
        `window "${ownerLabel}" needs shell:allow-spawn for "${program}" with an "args" scope that lets these ` +
        "arguments through, shell:allow-stdin-write and shell:allow-kill in a capability (docs/tauri.md, Capabilities)",
    );
  });
  storage?.setItem(pidKey, String(link.child.pid));

  const host = createSidecarHost({
    link,
    ...(options.getSnapshot === undefined ? {} : { getSnapshot: options.getSnapshot }),
    ...(options.onError === undefined ? {} : { onError: options.onError }),
    client: { name: "@state-sync/sdk tauri relay" },
  });

  /** By session id (one per connectTauriWindow call). */
  const sessions = new Map<string, Session>();
  /** The page load each window's sessions belong to, by window label. */
  const pages = new Map<string, string>();
  /** Labels whose `tauri://destroyed` the relay listens to: one listener per label, across reloads. */
  const destroyedListeners = new Map<string, Promise<UnlistenFn>>();
  const unlisteners: Promise<UnlistenFn>[] = [];
  let closed = false;

  const toWindow = (label: string, envelope: OwnerEnvelope): Promise<void> => emitTo(label, TO_WINDOW, envelope);

  const endSession = (session: Session): void => {
    sessions.delete(session.id);
    session.detach();
  };

  /** Ends every session of a window (destroyed), or of its page loads other than `keep` (reloaded). */
  const endWindow = (label: string, keep?: string): void => {
    for (const session of [...sessions.values()]) {
      if (session.label === label && session.page !== keep) {
        endSession(session);
      }
    }
  };

  const openSession = (label: string, page: string, id: string): Session => {
    const listeners = new LinkListeners();
    let linkClosed = false;
    const sender = createBatchSender(
      (messages) => toWindow(label, { kind: "messages", owner, session: id, messages }),
      // emitTo fails only when the event plugin refuses it: the window cannot be served.
      () => sessionLink.close(),
    );
    const sessionLink: Session["link"] = {
      send(message) {
        if (linkClosed) {
          throw new ConnectionClosedError(`window "${label}": its session ended`);
        }
        sender.push(message);
      },
      onMessage: listeners.onMessage,
      onClose: listeners.onClose,
      close() {
        if (linkClosed) {
          return;
        }
        linkClosed = true;
        sender.stop();
        listeners.closed();
        // A destroyed window gets nothing (Tauri drops an emit to a label that is gone); a
        // reloaded one ignores it (another session); a live one learns its link is over.
        void toWindow(label, {
          kind: "closed",
          owner,
          session: id,
          reason: `window "${label}": its session ended`,
        }).catch(() => {});
      },
      deliver(messages) {
        if (linkClosed) {
          return;
        }
        for (const message of messages) {
          listeners.deliver(message);
        }
      },
    };
    const session: Session = { label, page, id, link: sessionLink, detach: () => {} };
    const access = options.windowAccess?.(label);
    session.detach = host.attachWindow(sessionLink, access === undefined ? {} : { access });
    return session;
  };

  const watchDestroyed = (label: string): Promise<UnlistenFn> => {
    const known = destroyedListeners.get(label);
    if (known !== undefined) {
      return known;
    }
    // tauri://destroyed is emitted to the window's own targets (Window/WebviewWindow with
    // its label): a listener that names the label hears it from this webview.
    const unlisten = listen(
      "tauri://destroyed",
      () => {
        endWindow(label);
        pages.delete(label);
        destroyedListeners.delete(label);
        void unlisten.then((stop) => stop()).catch(() => {});
      },
      { target: { kind: "Window", label } },
    );
    destroyedListeners.set(label, unlisten);
    return unlisten;
  };

  const onHello = async (label: string, page: string, id: string): Promise<void> => {
    if (sessions.get(id)?.label === label) {
      // The window said hello twice (it heard `ready` while its first hello was on the way).
      await toWindow(label, { kind: "welcome", owner, ownerLabel, session: id });
      return;
    }
    if (pages.get(label) !== page) {
      endWindow(label, page); // the page reloaded: the old page's channels go first
      pages.set(label, page);
    }
    if (label !== ownerLabel) {
      await watchDestroyed(label);
    }
    if (closed || pages.get(label) !== page) {
      return; // the relay closed, or the window reloaded again meanwhile
    }
    const session = openSession(label, page, id);
    sessions.set(id, session);
    session.link.onClose(() => {
      if (sessions.get(id) === session) {
        sessions.delete(id);
      }
    });
    await toWindow(label, { kind: "welcome", owner, ownerLabel, session: id });
  };

  unlisteners.push(
    listen(
      TO_OWNER,
      (event) => {
        const envelope = readWindowEnvelope(event.payload);
        if (envelope === undefined || closed) {
          return;
        }
        if (envelope.kind === "hello") {
          void onHello(envelope.label, envelope.page, envelope.session).catch(() => {});
          return;
        }
        const session = sessions.get(envelope.session);
        if (envelope.owner !== owner || session === undefined || session.label !== envelope.label) {
          // A page this relay does not serve (a previous owner's, or a page since reloaded):
          // tell it, so a live page reconnects instead of waiting for answers.
          if (envelope.kind === "messages") {
            void toWindow(envelope.label, {
              kind: "closed",
              owner: envelope.owner,
              session: envelope.session,
              reason: `the state-sync owner window "${ownerLabel}" does not serve this page (it restarted): connect again`,
            }).catch(() => {});
          }
          return;
        }
        if (envelope.kind === "goodbye") {
          endSession(session);
          return;
        }
        session.link.deliver(envelope.messages);
      },
      { target: ownerLabel },
    ),
  );

  if (options.invalidateEvent !== undefined) {
    const client = host.connect(); // the owner's own connection, for invalidate
    unlisteners.push(
      listen<InvalidateParams>(options.invalidateEvent, (event) => {
        void client.then((c) => c.invalidate(event.payload)).catch(() => {});
      }),
    );
  }

  await Promise.all([...unlisteners]).catch((error: unknown) => {
    link.close();
    throw new Error(
      `createTauriRelay: listening to Tauri events failed: ${String(error)}: ` +
        `give window "${ownerLabel}" core:event:default in a capability (docs/tauri.md, Capabilities)`,
    );
  });

  const announce = (kind: OwnerAnnouncement["kind"]): Promise<void> =>
    emit(OWNER, { kind, owner, ownerLabel } satisfies OwnerAnnouncement);

  const close = (): void => {
    if (closed) {
      return;
    }
    closed = true;
    stopPageHide();
    void announce("closed").catch(() => {});
    for (const session of [...sessions.values()]) {
      endSession(session);
    }
    for (const unlisten of [...unlisteners, ...destroyedListeners.values()]) {
      void unlisten.then((stop) => stop()).catch(() => {});
    }
    host.close();
    // The pid stays in localStorage: this page may be gone before the sidecar has read
    // `shutdown`, and the next owner then ends it by that id.
  };
  // The page goes (reload, the owner window closing): tell the windows now rather than
  // letting them find out from `tauri://destroyed` or the next owner's `ready`.
  const stopPageHide = onPageHide(close);
  // The sidecar exited (crashed, killed): every window learns the relay is gone.
  link.onClose(() => close());

  // Windows started before this relay wait for `ready` to say hello again.
  await announce("ready");

  return {
    ready: host.ready,
    link,
    windows: () => [...new Set([...sessions.values()].map((session) => session.label))],
    connect: (connectOptions) => host.connect(connectOptions),
    close,
  };
}

interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

function localStorageOrUndefined(): StorageLike | undefined {
  const storage = (globalThis as unknown as { localStorage?: StorageLike }).localStorage;
  return storage === undefined ? undefined : storage;
}
