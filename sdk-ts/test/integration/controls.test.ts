import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../../src/client.js";
import { ErrorCodes, RpcError } from "../../src/errors.js";
import { createRevisionSync } from "../../src/revision-sync.js";
import { type Gate, gate, within } from "../helpers/async.js";
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

  it("client.delete: windows are applied the deletion, the next write goes on from it", async () => {
    const sidecar = startSidecar([]);
    const client = await within(connect(sidecar.link), "connect");
    await client.set("doc", { n: 1 });
    const applied: { revision: string; data: unknown; deleted?: true }[] = [];
    const reached = new Map<string, Gate>();
    const at = (revision: string) => {
      let g = reached.get(revision);
      if (g === undefined) {
        g = gate();
        reached.set(revision, g);
      }
      return g;
    };
    const sync = createRevisionSync({
      topic: "doc",
      connection: client,
      applier: {
        apply(envelope) {
          applied.push({
            revision: envelope.revision,
            data: envelope.data,
            ...(envelope.deleted ? { deleted: envelope.deleted } : {}),
          });
          at(envelope.revision).open();
        },
      },
    });
    await within(sync.start(), "start");

    const conflict = await client.delete("doc", { expectedRevision: "0" }).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(RpcError);
    expect(conflict).toMatchObject({ code: ErrorCodes.RevisionConflict, data: { currentRevision: "1" } });

    expect(await client.delete("doc", { expectedRevision: "1" })).toEqual({ topic: "doc", revision: "2" });
    await within(at("2").promise, "the deletion applied");
    expect(await client.get("doc")).toEqual({ topic: "doc", revision: "2", epoch: expect.any(String), deleted: true });

    expect(await client.set("doc", { n: 3 })).toEqual({ topic: "doc", revision: "3" });
    await within(at("3").promise, "the write after the deletion applied");
    expect(applied).toEqual([
      { revision: "1", data: { n: 1 } },
      { revision: "2", data: null, deleted: true },
      { revision: "3", data: { n: 3 } },
    ]);
    sync.stop();
    await sidecar.finish();
  });
});
