import { afterEach, describe, expect, it } from "vitest";
import { connect, type StateSyncClient } from "../../src/client.js";
import { ErrorCodes, RpcError } from "../../src/errors.js";
import { createRevisionSync, type SyncErrorContext } from "../../src/revision-sync.js";
import { until, within } from "../helpers/async.js";
import { disposeAll, type RunningSidecar, startSidecar } from "./harness.js";

// The parity fixes of issue 13 against the real binary: the sidecar's own words for bad
// params, its reports of a window's thrown values, and a provider's unencodable data.

afterEach(disposeAll);

async function connected(args: string[] = []): Promise<{ sidecar: RunningSidecar; client: StateSyncClient }> {
  const sidecar = startSidecar(args);
  const client = await within(connect(sidecar.link), "connect");
  return { sidecar, client };
}

/** What a call throws or rejects with. */
async function failure(call: () => unknown): Promise<unknown> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  throw new Error("the call did not fail");
}

describe("against the real statesync-sidecar", () => {
  it("the client refuses bad invalidate and state.set params with the sidecar's own code and message", async () => {
    const { sidecar, client } = await connected();
    const invalidates: unknown[] = [
      { topic: "t", revision: "007" },
      { topic: "t", revision: "1x" },
      { topic: "t", revision: "18446744073709551616" },
      { topic: "t", revision: "" },
      { topic: "t", revision: 7 },
      { topic: "t" },
      { revision: "1" },
      { topic: "  ", revision: "1" },
      { topic: "t", revision: "1", sourceId: 3 },
      { topic: "t", revision: "1", channel: "" },
    ];
    for (const params of invalidates) {
      const wire = (await failure(() => client.connection.request("invalidate", params))) as RpcError;
      expect(wire, JSON.stringify(params)).toBeInstanceOf(RpcError);
      const local = await failure(() => client.invalidateAndCount(params as never));
      expect(local, JSON.stringify(params)).toMatchObject({ code: wire.code, message: wire.message, data: wire.data });
      expect(() => client.invalidate(params as never)).toThrow(wire.message);
    }
    const sets: [string, unknown, Record<string, unknown>][] = [
      ["t", 1, { expectedRevision: "01" }],
      ["t", 1, { expectedRevision: "99999999999999999999" }],
      ["", 1, {}],
      [" ", 1, {}],
      ["t", undefined, {}],
    ];
    for (const [topic, data, options] of sets) {
      const params = { topic, ...(data === undefined ? {} : { data }), ...options };
      const wire = (await failure(() => client.connection.request("state.set", params))) as RpcError;
      expect(wire, JSON.stringify(params)).toBeInstanceOf(RpcError);
      const local = await failure(() => client.set(topic, data, options));
      expect(local, JSON.stringify(params)).toMatchObject({ code: wire.code, message: wire.message, data: wire.data });
    }
    // Not finish(): the transcript holds these invalid params on purpose, and the schema refuses them.
    await sidecar.node.dispose();
    expect(sidecar.node.process.exitCode).toBe(0);
  });

  it("onError gets the value the window's applier threw, with the sidecar's context", async () => {
    const { sidecar, client } = await connected();
    class Rejected extends Error {
      readonly attemptedRevision: string;
      constructor(revision: string) {
        super(`revision ${revision} rejected by the store`);
        this.attemptedRevision = revision;
      }
    }
    const errors: SyncErrorContext[] = [];
    let reject = false;
    const sync = createRevisionSync({
      topic: "app-config",
      connection: client,
      applier: {
        apply({ revision }) {
          if (reject) throw new Rejected(revision);
        },
      },
      onError: (context) => errors.push(context),
    });
    await within(sync.start(), "start");
    reject = true;
    await client.set("app-config", { theme: "dark" });
    await until(() => errors.length === 1, "the apply failure report");
    expect(errors[0]).toMatchObject({ phase: "apply", topic: "app-config", snapshotRevision: "1" });
    expect(errors[0]?.error).toBeInstanceOf(Rejected);
    expect(errors[0]?.error).toMatchObject({ attemptedRevision: "1" });
    sync.stop();
    await sidecar.finish();
  });

  it("a provider answering data JSON cannot encode fails start() at once, saying what, not after the call timeout", async () => {
    const { sidecar, client } = await connected(["--call-timeout", "60s"]);
    const errors: SyncErrorContext[] = [];
    const sync = createRevisionSync({
      topic: "counters",
      connection: client,
      provider: { getSnapshot: async () => ({ revision: "1", data: { visits: 10n ** 20n } }) },
      applier: { apply() {} },
      onError: (context) => errors.push(context),
    });
    // within() fails long before the 60 s call timeout would end the start.
    const error = await within(
      failure(() => sync.start()),
      "start to fail",
      10_000,
    );
    expect(error).toMatchObject({ code: ErrorCodes.SyncFailed });
    expect((error as Error).message).toContain(
      "result.data.visits: the BigInt 100000000000000000000n cannot be encoded",
    );
    await until(() => errors.length > 0, "the getSnapshot report");
    expect(errors[0]?.phase).toBe("getSnapshot");
    expect(errors[0]?.error).toMatchObject({ message: expect.stringContaining("cannot be encoded as JSON") });
    await sidecar.finish();
  });
});
