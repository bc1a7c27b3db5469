import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../../src/client.js";
import { createRevisionSync } from "../../src/revision-sync.js";
import { gate, within } from "../helpers/async.js";
import { disposeAll, startSidecar } from "./harness.js";

afterEach(disposeAll);

describe("write-side controls against the real statesync-sidecar", () => {
  it("throttling.debounceMs: a burst of writes is applied once, after the quiet time", async () => {
    const debounceMs = 1000;
    const sidecar = startSidecar([]);
    const client = await within(connect(sidecar.link), "connect");
    await client.set("doc", 1);
    const applied: { revision: string; at: number }[] = [];
    const final = gate();
    const sync = createRevisionSync<number>({
      topic: "doc",
      connection: client,
      throttling: { debounceMs },
      applier: {
        apply({ revision }) {
          applied.push({ revision, at: Date.now() });
          if (revision === "5") final.open();
        },
      },
    });
    await within(sync.start(), "start");
    let lastWrite = 0;
    for (let n = 2; n <= 5; n++) {
      lastWrite = Date.now(); // before the write: the sidecar's event can only come later
      await client.set("doc", n);
    }
    await within(final.promise, "revision 5 applied");
    expect(applied.map((a) => a.revision)).toEqual(["1", "5"]);
    const waited = (applied[1]?.at ?? 0) - lastWrite;
    expect(waited, `applied ${waited}ms after the last write, want at least the debounce`).toBeGreaterThanOrEqual(
      debounceMs,
    );
    sync.stop();
    await sidecar.finish();
  });
});
