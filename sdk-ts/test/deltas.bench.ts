import { bench, describe } from "vitest";
import type { JsonPatch } from "../src/json-patch.js";
import { createRevisionSync } from "../src/revision-sync.js";
import { connectToFake, type FakeSidecar, INITIALIZE_WITH_DELTAS } from "./helpers/fake-sidecar.js";

// Issue 15, a window's share of a change: the SDK's work for one apply in one window,
// through the client over an in-memory link that carries JSON text, as a wire does. The
// topic is 1 MiB shaped as bench/'s (an array of small records), one leaf changed per
// apply. Reference: the same window's full apply of 1 KiB. `task bench:sdk` runs it;
// docs/performance.md has figures.

function largeDoc(bytes: number): { meta: unknown; items: unknown[] } {
  const items: unknown[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const item = { id: i, name: `item-${i}`, price: (i % 1000) + 0.25, tags: ["x", "y"], note: `note ${i}` };
    items.push(item);
    size += JSON.stringify(item).length + 1;
  }
  return { meta: { version: 3, title: "a large topic" }, items };
}

const topic = "big";
const noop = { apply() {} };

/** A started sync whose first apply was `first`; next() sends revision n+1 as `change(n)` would have it. */
async function window(first: unknown, options: { deltas: boolean; freezeData?: boolean }) {
  const { client, sidecar } = await connectToFake(INITIALIZE_WITH_DELTAS);
  const channel = `w/${topic}`;
  const sync = createRevisionSync({ topic, channel, connection: client, applier: noop, source: "store", ...options });
  const start = sync.start();
  const open = await sidecar.next("channel.open");
  await sidecar.call("apply", { channel, topic, revision: "1", data: first });
  sidecar.respond(open.id ?? null, { channel, topic, source: "store", localRevision: "1" });
  await start;
  return { sidecar, channel, revision: 1 };
}

async function send(w: { sidecar: FakeSidecar; channel: string; revision: number }, params: Record<string, unknown>) {
  const answer = await w.sidecar.call("apply", {
    channel: w.channel,
    topic,
    revision: String(w.revision + 1),
    ...params,
  });
  if (answer.error !== undefined) {
    throw new Error(`apply ${w.revision + 1}: ${answer.error.message}`);
  }
  w.revision++;
}

const big = largeDoc(1 << 20);
const leaf = (n: number): JsonPatch => [{ op: "replace", path: "/items/5000/note", value: `note ${n}` }];
const small = largeDoc(1 << 10);
const full = await window(big, { deltas: false });
const copying = await window(big, { deltas: true });
const frozen = await window(big, { deltas: true, freezeData: true });
const reference = await window(small, { deltas: false });

describe("one window, one apply of a 1 MiB topic, one leaf changed (reference: a full apply of 1 KiB)", () => {
  bench("reference: full data, 1 KiB", () => send(reference, { data: small }));
  bench("full data, 1 MiB (deltas off)", () => send(full, { data: big }));
  bench("delta, 1 MiB (default: the SDK copies the data for the applier)", () =>
    send(copying, { baseRevision: String(copying.revision), patch: leaf(copying.revision) }),
  );
  bench("delta, 1 MiB, freezeData: true", () =>
    send(frozen, { baseRevision: String(frozen.revision), patch: leaf(frozen.revision) }),
  );
});
