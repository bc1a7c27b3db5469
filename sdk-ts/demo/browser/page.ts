// One window of the browser demo: the SDK's core, bundled for the browser, connects to the
// host's relay over a WebSocket and keeps one topic in sync with createRevisionSync.
// URL parameters: ?name=<window name>&topic=<topic> (defaults: a random name, "demo").
import {
  compareRevisions,
  connect,
  createRevisionSync,
  ErrorCodes,
  RpcError,
  type StateSyncClient,
} from "../../src/index.js";
import { createWebSocketLink } from "./websocket-link.js";

/** The topic's state in this demo. */
export interface DemoState {
  count: number;
  by: string;
  note: string;
}

/** What the window shows, and what the tests read. */
export interface DemoView {
  revision: string;
  data: DemoState | undefined;
  /** How many times the sidecar applied a snapshot to this window. */
  applies: number;
}

/** The window's handle, on `window.stateSyncDemo`, for the buttons and for the tests. */
export interface DemoApi {
  readonly name: string;
  readonly topic: string;
  readonly channel: string;
  readonly view: DemoView;
  /** Resolves once the first state is applied (createRevisionSync's start()). */
  readonly ready: Promise<void>;
  /** Writes the topic; resolves with the new revision. */
  write(state: DemoState): Promise<string>;
  /** count + 1 with a compare-and-set, retried on conflict, so concurrent windows lose no increment. */
  increment(): Promise<string>;
  /** `count` writes at once, without waiting between them; resolves with the last revision. */
  burst(count: number): Promise<string>;
}

declare global {
  interface Window {
    stateSyncDemo: DemoApi;
  }
}

const params = new URLSearchParams(location.search);
const name = params.get("name") ?? `window-${Math.random().toString(36).slice(2, 6)}`;
const topic = params.get("topic") ?? "demo";
const channel = `${name}/${topic}`;
const view: DemoView = { revision: "0", data: undefined, applies: 0 };

const element = <T extends HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (found === null) {
    throw new Error(`the page has no #${id}`);
  }
  return found as T;
};

// A stable colour per window name (FNV-1a, spread by the golden ratio), so that windows
// tell apart at a glance.
let hash = 2166136261;
for (const char of name) {
  hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
}
const hue = Math.round(((hash * 0.618033988749895) % 1) * 360);
document.documentElement.style.setProperty("--accent", `hsl(${hue} 65% 42%)`);
document.title = `${name} · state-sync`;
element("name").textContent = name;
element("topic").textContent = topic;

function render(): void {
  element("revision").textContent = view.revision;
  element("applies").textContent = String(view.applies);
  element("count").textContent = String(view.data?.count ?? 0);
  element("by").textContent = view.data?.by ?? "nobody yet";
  element("note").textContent = view.data?.note ?? "";
  element("state").textContent = JSON.stringify(view.data ?? null, null, 2);
}

function setStatus(text: string, kind: "ok" | "error" = "ok"): void {
  const status = element("status");
  status.textContent = text;
  status.dataset.kind = kind;
}

let client: StateSyncClient | undefined;
const connected = (): StateSyncClient => {
  if (client === undefined) {
    throw new Error("not connected to the host yet");
  }
  return client;
};

async function write(state: DemoState): Promise<string> {
  return (await connected().set(topic, state)).revision;
}

async function increment(): Promise<string> {
  for (;;) {
    const current = await connected().get<DemoState>(topic);
    const next = { count: (current.data?.count ?? 0) + 1, by: name, note: current.data?.note ?? "" };
    try {
      return (await connected().set(topic, next, { expectedRevision: current.revision })).revision;
    } catch (error) {
      if (!(error instanceof RpcError && error.code === ErrorCodes.RevisionConflict)) {
        throw error;
      }
      // Another window wrote in between: read again and retry.
    }
  }
}

async function burst(count: number): Promise<string> {
  const base = view.data ?? { count: 0, by: name, note: "" };
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      connected().set(topic, { ...base, count: base.count + i + 1, by: `${name} (burst)` }),
    ),
  );
  return (
    results
      .map((result) => result.revision)
      .sort(compareRevisions)
      .at(-1) ?? view.revision
  );
}

async function start(): Promise<void> {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  client = await connect(await createWebSocketLink(`${scheme}//${location.host}/ws`));
  client.onClose((error) => setStatus(`disconnected from the host${error ? `: ${error.message}` : ""}`, "error"));
  const sync = createRevisionSync<DemoState>({
    topic,
    channel,
    connection: client,
    applier: {
      apply({ revision, data }) {
        view.revision = revision;
        view.data = data;
        view.applies++;
        render();
      },
    },
    onError: (context) => console.error("state-sync", context.phase, context.error),
  });
  await sync.start();
  setStatus(`in sync on channel ${channel}`);
}

const ready = start();
ready.catch((error: unknown) => {
  setStatus(String(error), "error");
  console.error("state-sync demo: could not start", error);
});

window.stateSyncDemo = { name, topic, channel, view, ready, write, increment, burst };

const act = (what: () => Promise<unknown>) => () => {
  what().catch((error: unknown) => {
    setStatus(String(error), "error");
    console.error(error);
  });
};
element("increment").addEventListener("click", act(increment));
element("burst").addEventListener(
  "click",
  act(() => burst(1000)),
);
element("note-form").addEventListener(
  "submit",
  act(async () => {
    const input = element<HTMLInputElement>("note-input");
    await write({ count: view.data?.count ?? 0, by: name, note: input.value });
    input.value = "";
  }),
);
element("note-form").addEventListener("submit", (event) => event.preventDefault());
render();
