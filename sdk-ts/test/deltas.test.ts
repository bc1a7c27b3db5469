import { proxy } from "valtio/vanilla";
import { describe, expect, it } from "vitest";
import { reactive } from "vue";
import { createStore } from "zustand/vanilla";
import { valtioApplier } from "../src/appliers/valtio.js";
import { vueApplier } from "../src/appliers/vue.js";
import { zustandApplier } from "../src/appliers/zustand.js";
import type { StateSyncClient } from "../src/client.js";
import { ErrorCodes, RpcError } from "../src/errors.js";
import type { JsonPatch } from "../src/json-patch.js";
import { createRevisionSync, type RevisionSyncOptions, type SnapshotApplier } from "../src/revision-sync.js";
import { within } from "./helpers/async.js";
import {
  connectToFake,
  type FakeSidecar,
  INITIALIZE_RESULT,
  INITIALIZE_WITH_DELTAS,
  type Received,
} from "./helpers/fake-sidecar.js";

// Issue 15, the window's side (docs/protocol.md, "Deltas"): an apply may carry a patch from
// the revision the channel last applied instead of the data. The SDK turns it into the full
// data for the applier, or answers -32011 and never calls the applier; the sidecar then
// sends the full data. Applies here are played by hand, as the sidecar would send them.

const topic = "settings";
const channel = "w1/settings";

type Envelope = Parameters<SnapshotApplier<unknown>["apply"]>[0];

function recordingApplier() {
  const seen: Envelope[] = [];
  return { seen, apply: (envelope: Envelope) => void seen.push(envelope) };
}

/** A started sync on a store topic; the sidecar's first apply is `first` (revision 1). */
async function started(
  first: unknown,
  options: Pick<RevisionSyncOptions<unknown>, "deltas" | "paths" | "channelOptions" | "channel" | "freezeData"> = {},
  initialize: unknown = INITIALIZE_WITH_DELTAS,
  applier: SnapshotApplier<unknown> = recordingApplier(),
) {
  const { client, sidecar } = await connectToFake(initialize);
  const handle = createRevisionSync({ topic, channel, connection: client, applier, source: "store", ...options });
  const start = handle.start();
  const open = await sidecar.next("channel.open");
  const answer = await full(sidecar, "1", first);
  expect(answer.error).toBeUndefined();
  sidecar.respond(open.id ?? null, { channel, topic, source: "store", localRevision: "1" });
  await within(start, "start");
  return { client, sidecar, handle, open };
}

function full(sidecar: FakeSidecar, revision: string, data: unknown): Promise<Received> {
  return sidecar.call("apply", { channel, topic, revision, data });
}

function delta(sidecar: FakeSidecar, baseRevision: string, revision: string, patch: JsonPatch): Promise<Received> {
  return sidecar.call("apply", { channel, topic, revision, baseRevision, patch });
}

describe("a delta apply", () => {
  it("reaches the applier as the full new data, with the patch and its base", async () => {
    const applier = recordingApplier();
    const { sidecar, handle, open } = await started({ theme: "dark", size: 12 }, {}, INITIALIZE_WITH_DELTAS, applier);
    expect(open.params).toEqual({ channel, topic, source: "store", options: { deltas: true } });
    const patch: JsonPatch = [{ op: "replace", path: "/size", value: 14 }];
    expect((await delta(sidecar, "1", "2", patch)).result).toEqual({});
    expect(applier.seen[1]).toEqual({ revision: "2", data: { theme: "dark", size: 14 }, patch, baseRevision: "1" });
    expect(handle.getLocalRevision()).toBe("2");
    // The next delta builds on revision 2.
    await delta(sidecar, "2", "3", [{ op: "add", path: "/lang", value: "fr" }]);
    expect(applier.seen[2]?.data).toEqual({ theme: "dark", size: 14, lang: "fr" });
  });

  it("from a base the window does not hold is answered -32011 baseMismatch, and the full apply after it heals", async () => {
    const applier = recordingApplier();
    const { sidecar, handle } = await started({ n: 1 }, {}, INITIALIZE_WITH_DELTAS, applier);
    // On purpose: the sidecar believes the window holds revision 2; it holds 1.
    const answer = await delta(sidecar, "2", "3", [{ op: "replace", path: "/n", value: 3 }]);
    expect(answer.error).toMatchObject({
      code: ErrorCodes.DeltaRejected,
      data: { reason: "baseMismatch", localRevision: "1" },
      message: expect.stringMatching(/revision "2".*last applied 1.*send the full data/),
    });
    expect(applier.seen).toHaveLength(1); // never called
    expect(handle.getLocalRevision()).toBe("1");
    // What the sidecar does next: the same revision as a full apply, then deltas from it.
    await full(sidecar, "3", { n: 3 });
    expect((await delta(sidecar, "3", "4", [{ op: "replace", path: "/n", value: 4 }])).result).toEqual({});
    expect(applier.seen.map((e) => e.data)).toEqual([{ n: 1 }, { n: 3 }, { n: 4 }]);
  });

  it("of another epoch is a base mismatch, even at the same revision number", async () => {
    const { sidecar } = await started({ n: 1 });
    const answer = await sidecar.call("apply", {
      channel,
      topic,
      revision: "2",
      epoch: "next-life",
      baseRevision: "1",
      patch: [],
    });
    expect(answer.error).toMatchObject({ code: -32011, data: { reason: "baseMismatch", localRevision: "1" } });
  });

  it("that does not apply is answered -32011 patchFailed, and the base stays usable", async () => {
    const applier = recordingApplier();
    const { sidecar } = await started({ n: 1 }, {}, INITIALIZE_WITH_DELTAS, applier);
    for (const patch of [
      [{ op: "remove", path: "/missing" }],
      [{ op: "test", path: "/n", value: 2 }],
      [
        { op: "replace", path: "/n", value: 2 },
        { op: "jump", path: "/n" },
      ],
      "not a patch",
    ]) {
      const answer = await delta(sidecar, "1", "2", patch as JsonPatch);
      expect(answer.error, JSON.stringify(patch)).toMatchObject({
        code: ErrorCodes.DeltaRejected,
        data: { reason: "patchFailed", localRevision: "1" },
      });
    }
    expect(applier.seen).toHaveLength(1);
    // The failed patches changed nothing: a good one from revision 1 still applies to {n: 1}.
    await delta(sidecar, "1", "2", [{ op: "add", path: "/m", value: 0 }]);
    expect(applier.seen[1]?.data).toEqual({ n: 1, m: 0 });
  });

  it("before the channel applied anything is a base mismatch without localRevision", async () => {
    const { client, sidecar } = await connectToFake(INITIALIZE_WITH_DELTAS);
    const applier = recordingApplier();
    client.serveChannel(channel, { apply: (params) => applier.apply(params) });
    void client.openChannel({ channel, topic, options: { deltas: true } });
    await sidecar.next("channel.open");
    const answer = await delta(sidecar, "1", "2", []);
    expect(answer.error).toMatchObject({ code: -32011, data: { reason: "baseMismatch" } });
    expect((answer.error?.data as object) ?? {}).not.toHaveProperty("localRevision");
    expect(applier.seen).toEqual([]);
  });

  it("after the applier failed is a base mismatch: what the applier kept may share the base", async () => {
    let fail = false;
    const seen: unknown[] = [];
    const applier: SnapshotApplier<unknown> = {
      apply({ data }) {
        if (fail) throw new Error("the store refused it");
        seen.push(data);
      },
    };
    const { sidecar } = await started({ n: 1 }, {}, INITIALIZE_WITH_DELTAS, applier);
    fail = true;
    expect((await delta(sidecar, "1", "2", [{ op: "replace", path: "/n", value: 2 }])).error?.code).toBe(
      ErrorCodes.InternalError,
    );
    fail = false;
    const answer = await delta(sidecar, "1", "2", [{ op: "replace", path: "/n", value: 2 }]);
    expect(answer.error).toMatchObject({ code: -32011, data: { reason: "baseMismatch" } });
    await full(sidecar, "2", { n: 2 });
    expect(seen).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it("after a deletion patches the null the deletion left", async () => {
    const applier = recordingApplier();
    const { sidecar } = await started({ n: 1 }, {}, INITIALIZE_WITH_DELTAS, applier);
    await sidecar.call("apply", { channel, topic, revision: "2", data: null, deleted: true });
    await delta(sidecar, "2", "3", [{ op: "add", path: "", value: { fresh: true } }]);
    expect(applier.seen.map((e) => e.data)).toEqual([{ n: 1 }, null, { fresh: true }]);
  });

  it("with data as well is refused: the SDK will not guess which one is meant", async () => {
    const { sidecar } = await started({ n: 1 });
    const answer = await sidecar.call("apply", {
      channel,
      topic,
      revision: "2",
      baseRevision: "1",
      patch: [],
      data: { n: 2 },
    });
    expect(answer.error).toMatchObject({ code: -32011, data: { reason: "patchFailed" } });
  });
});

describe("appliers never see an object the SDK changes later", () => {
  it("an applier that keeps every data it got sees each one unchanged, whatever came after", async () => {
    const applier = recordingApplier();
    const { sidecar } = await started({ a: { list: [1, 2] }, b: { x: 1 } }, {}, INITIALIZE_WITH_DELTAS, applier);
    const frozen = [structuredClone(applier.seen[0]?.data)];
    const patches: JsonPatch[] = [
      [{ op: "add", path: "/a/list/-", value: 3 }],
      [{ op: "replace", path: "/b/x", value: 2 }],
      [{ op: "move", from: "/a/list", path: "/b/list" }],
      [{ op: "remove", path: "/a" }],
    ];
    for (const [i, patch] of patches.entries()) {
      expect((await delta(sidecar, String(i + 1), String(i + 2), patch)).result).toEqual({});
      frozen.push(structuredClone(applier.seen[i + 1]?.data));
    }
    expect(applier.seen.map((e) => e.data)).toEqual(frozen);
    expect(frozen.at(-1)).toEqual({ b: { x: 2, list: [1, 2, 3] } });
  });

  it("an applier (or its user) that changes what it got does not change the next patch's base", async () => {
    const kept: Record<string, unknown>[] = [];
    const applier: SnapshotApplier<unknown> = {
      apply({ data }) {
        const value = data as Record<string, { list: number[] }>;
        kept.push(value);
        value.a?.list.push(99); // a careless applier
      },
    };
    const { sidecar } = await started({ a: { list: [1] } }, {}, INITIALIZE_WITH_DELTAS, applier);
    await delta(sidecar, "1", "2", [{ op: "test", path: "/a/list", value: [1] }]);
    expect(kept[1]).toEqual({ a: { list: [1, 99] } }); // the test op passed: the base was [1]
  });

  it("Vue reactive, Valtio and Zustand: local edits between deltas leave the deltas right", async () => {
    const first = { prefs: { theme: "dark", size: 12 }, tabs: ["a"] };
    const vue = reactive<Record<string, unknown>>({});
    const valtio = proxy<Record<string, unknown>>({});
    const zustand = createStore<Record<string, unknown>>()(() => ({}));
    for (const [name, applier, local] of [
      ["vue", vueApplier(vue), () => vue],
      ["valtio", valtioApplier(valtio), () => valtio],
      ["zustand", zustandApplier(zustand), () => zustand.getState()],
    ] as const) {
      const { sidecar } = await started(structuredClone(first), { channel }, INITIALIZE_WITH_DELTAS, applier);
      // The user edits the state the applier folded the data into (Vue's reactive wraps the
      // very objects the applier was given, so this reaches them).
      const state = local() as { prefs: { theme: string }; tabs: string[] };
      state.prefs.theme = "local edit";
      state.tabs.push("local tab");
      const answer = await delta(sidecar, "1", "2", [
        { op: "test", path: "/prefs/theme", value: "dark" },
        { op: "replace", path: "/prefs/size", value: 14 },
      ]);
      expect(answer.result, name).toEqual({});
      expect(JSON.parse(JSON.stringify(local())), name).toEqual({
        prefs: { theme: "dark", size: 14 },
        tabs: ["a"],
      });
    }
  });
});

describe("freezeData: the applier gets frozen data, and the SDK keeps no copy of it", () => {
  it("every object the applier gets is frozen, a change to it throws, and deltas apply as before", async () => {
    const applier = recordingApplier();
    const first = { a: { list: [1, 2] }, b: { x: 1 } };
    const { sidecar } = await started(first, { freezeData: true }, INITIALIZE_WITH_DELTAS, applier);
    const patches: JsonPatch[] = [
      [{ op: "add", path: "/a/list/-", value: { deep: [3] } }],
      [{ op: "replace", path: "/b/x", value: { y: [2] } }],
      [{ op: "copy", from: "/a/list", path: "/c" }],
      [{ op: "move", from: "/a/list", path: "/b/list" }],
    ];
    for (const [i, patch] of patches.entries()) {
      expect((await delta(sidecar, String(i + 1), String(i + 2), patch)).result).toEqual({});
    }
    const everyObject = (value: unknown): object[] =>
      typeof value === "object" && value !== null ? [value, ...Object.values(value).flatMap(everyObject)] : [];
    for (const { data } of applier.seen) {
      for (const object of everyObject(data)) {
        expect(Object.isFrozen(object)).toBe(true);
      }
    }
    const last = applier.seen.at(-1)?.data as { b: { list: unknown[] } };
    expect(() => last.b.list.push(4)).toThrow(TypeError);
    expect(last).toEqual({ a: {}, b: { x: { y: [2] }, list: [1, 2, { deep: [3] }] }, c: [1, 2, { deep: [3] }] });
    // Earlier revisions are unchanged: the patches shared what they did not touch.
    expect(applier.seen[0]?.data).toEqual({ a: { list: [1, 2] }, b: { x: 1 } });
    expect(applier.seen[1]?.data).toEqual({ a: { list: [1, 2, { deep: [3] }] }, b: { x: 1 } });
    const [zero, one] = applier.seen.map((envelope) => envelope.data as { b: unknown });
    expect(one?.b).toBe(zero?.b);
  });

  it("without deltas too; a non-boolean is refused when the sync is made", async () => {
    const applier = recordingApplier();
    await started({ a: [1] }, { freezeData: true, deltas: false }, INITIALIZE_WITH_DELTAS, applier);
    const data = applier.seen[0]?.data as { a: unknown } | undefined;
    expect(data?.a).toEqual([1]);
    expect(Object.isFrozen(data?.a)).toBe(true);
    const { client } = await connectToFake(INITIALIZE_WITH_DELTAS);
    expect(() =>
      createRevisionSync({
        topic,
        connection: client,
        applier,
        freezeData: "yes" as unknown as boolean,
      }),
    ).toThrow(/options.freezeData is "yes": use true or false/);
  });

  it("Zustand and Redux-style appliers, which never change their state in place, work on frozen data", async () => {
    const zustand = createStore<Record<string, unknown>>()(() => ({}));
    const { sidecar } = await started(
      { prefs: { theme: "dark", size: 12 }, tabs: ["a"] },
      { freezeData: true },
      INITIALIZE_WITH_DELTAS,
      zustandApplier(zustand),
    );
    expect((await delta(sidecar, "1", "2", [{ op: "replace", path: "/prefs/size", value: 14 }])).result).toEqual({});
    expect(zustand.getState()).toEqual({ prefs: { theme: "dark", size: 14 }, tabs: ["a"] });
    // A user who changes the store's state in place hears of it at once.
    expect(() => (zustand.getState() as { tabs: string[] }).tabs.push("b")).toThrow(TypeError);
  });
});

describe("the deltas and paths options", () => {
  it("deltas: false leaves the option out, and a delta sent anyway is refused", async () => {
    const applier = recordingApplier();
    const { sidecar, open } = await started({ n: 1 }, { deltas: false }, INITIALIZE_WITH_DELTAS, applier);
    expect(open.params).toEqual({ channel, topic, source: "store" });
    const answer = await delta(sidecar, "1", "2", []);
    expect(answer.error).toMatchObject({ code: -32011, data: { reason: "baseMismatch" } });
    expect(answer.error?.message).toMatch(/not opened with deltas/);
    expect(applier.seen).toHaveLength(1);
  });

  it("a sidecar without the deltas capability is sent no deltas option (it would refuse it)", async () => {
    const { open } = await started({ n: 1 }, {}, INITIALIZE_RESULT);
    expect(open.params).toEqual({ channel, topic, source: "store" });
    const explicit = await started(
      { n: 1 },
      { deltas: true, channelOptions: { callTimeoutMs: 500 } },
      INITIALIZE_RESULT,
    );
    expect(explicit.open.params?.options).toEqual({ callTimeoutMs: 500 });
  });

  it("paths go to channel.open with deltas; without the capability start rejects, naming the fix", async () => {
    const { open } = await started({ a: 1 }, { paths: ["/a", "/b~1c"] });
    expect(open.params?.options).toEqual({ deltas: true, paths: ["/a", "/b~1c"] });

    const { client } = await connectToFake();
    const handle = createRevisionSync({
      topic,
      channel,
      connection: client,
      applier: recordingApplier(),
      paths: ["/a"],
    });
    await expect(handle.start()).rejects.toMatchObject({
      code: ErrorCodes.InvalidParams,
      message: expect.stringMatching(/paths needs a sidecar with the deltas capability.*update statesync-sidecar/),
    });
  });

  it("paths that the sidecar would refuse throw when the sync is made, naming the pointer", async () => {
    const { client } = await connectToFake(INITIALIZE_WITH_DELTAS);
    const make =
      (paths: unknown, extra: object = {}) =>
      () =>
        createRevisionSync({ topic, connection: client, applier: recordingApplier(), paths, ...extra } as never);
    expect(make([])).toThrow(/1 to 64 JSON Pointers/);
    expect(make(Array.from({ length: 65 }, (_, i) => `/k${i}`))).toThrow(/1 to 64/);
    expect(make([""])).toThrow(/the whole document: leave paths out/);
    expect(make(["theme"])).toThrow(/"theme" does not start with "\/"/);
    expect(make(["/a~2"])).toThrow(/"~0" for "~"/);
    expect(make(["/a", "/a"])).toThrow(/"\/a" twice/);
    expect(make(["/a"], { channelOptions: { paths: ["/b"] } })).toThrow(/paths is given twice/);
    expect(make(undefined, { deltas: "yes" })).toThrow(/options.deltas is "yes"/);
  });
});

describe("client.patch", () => {
  async function patchCall(
    client: StateSyncClient,
    sidecar: FakeSidecar,
    ...args: Parameters<StateSyncClient["patch"]>
  ) {
    const result = client.patch(...args);
    const sent = await sidecar.next("state.patch");
    sidecar.respond(sent.id ?? null, { topic: args[0], revision: "8" });
    return { sent, result: await result };
  }

  it("sends state.patch {topic, patch, expectedRevision?} and resolves with the new revision", async () => {
    const { client, sidecar } = await connectToFake(INITIALIZE_WITH_DELTAS);
    const patch: JsonPatch = [
      { op: "test", path: "/theme", value: "dark" },
      { op: "replace", path: "/theme", value: "light" },
    ];
    const plain = await patchCall(client, sidecar, topic, patch);
    expect(plain.sent.params).toEqual({ topic, patch });
    expect(plain.result).toEqual({ topic, revision: "8" });
    const cas = await patchCall(client, sidecar, topic, patch, { expectedRevision: "7", sourceId: "w1" });
    expect(cas.sent.params).toEqual({ topic, patch, expectedRevision: "7", sourceId: "w1" });
  });

  it("refuses a patch that is not RFC 6902 before sending it, -32602 naming the op", async () => {
    const { client, sidecar } = await connectToFake(INITIALIZE_WITH_DELTAS);
    const bad: [unknown, RegExp, object][] = [
      [{ op: "add" }, /a JSON Patch is an array of operations/, { field: "patch" }],
      [[{ op: "add", path: "/a" }], /patch\[0\]: add needs a "value"/, { field: "patch", index: 0 }],
      [
        [
          { op: "remove", path: "/a" },
          { op: "copy", path: "/b" },
        ],
        /patch\[1\]: "from" is missing/,
        { index: 1 },
      ],
      [[{ op: "replace", path: "a", value: 1 }], /does not start with "\/"/, { index: 0 }],
      [[{ op: "add", path: "/a", value: 1n }], /BigInt/, { field: "patch" }],
    ];
    for (const [patch, message, data] of bad) {
      const error = await client.patch(topic, patch as JsonPatch).catch((e: unknown) => e);
      expect(error, String(message)).toBeInstanceOf(RpcError);
      expect(error).toMatchObject({ code: ErrorCodes.InvalidParams, data });
      expect((error as Error).message).toMatch(message);
    }
    await expect(client.patch("", [])).rejects.toMatchObject({ code: ErrorCodes.InvalidParams });
    await expect(client.patch(topic, [], { expectedRevision: "07" })).rejects.toMatchObject({
      code: ErrorCodes.InvalidParams,
    });
    expect(sidecar.received.filter((m) => m.method === "state.patch")).toEqual([]);
  });
});
