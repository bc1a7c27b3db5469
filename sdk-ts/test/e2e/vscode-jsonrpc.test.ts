// A JSON-RPC peer this team did not write: Microsoft's vscode-jsonrpc (the library under
// every VS Code language client) drives `statesync-sidecar --framing lsp` over the child's
// stdio with its own Content-Length framing, request ids, error objects and handlers.
import { type ChildProcess, spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import {
  createMessageConnection,
  type MessageConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-jsonrpc/node";
import type { ApplyParams, ChannelStatus, ErrorNotification, GetSnapshotParams } from "../../src/protocol.js";
import { until, within } from "../helpers/async.js";
import { sidecarBinary } from "../integration/harness.js";

interface Peer {
  child: ChildProcess;
  connection: MessageConnection;
  applies: ApplyParams[];
  snapshotCalls: GetSnapshotParams[];
  errors: ErrorNotification[];
  stderr: string[];
  /** Answers the sidecar's `getSnapshot`; replace per test. */
  getSnapshot: (params: GetSnapshotParams) => unknown;
  /** Answers the sidecar's `apply`; replace per test. */
  apply: (params: ApplyParams) => unknown;
  exited: Promise<number | null>;
}

const peers: Peer[] = [];

function start(args: string[] = []): Peer {
  const child = spawn(sidecarBinary(), ["--framing", "lsp", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  if (child.stdout === null || child.stdin === null || child.stderr === null) {
    throw new Error("spawned without pipes");
  }
  const connection = createMessageConnection(
    new StreamMessageReader(child.stdout),
    new StreamMessageWriter(child.stdin),
  );
  const peer: Peer = {
    child,
    connection,
    applies: [],
    snapshotCalls: [],
    errors: [],
    stderr: [],
    getSnapshot: () => {
      throw new ResponseError(-32601, "no snapshot provider in this test");
    },
    apply: () => ({}),
    exited: new Promise((resolve) => child.once("close", (code) => resolve(code))),
  };
  child.stderr.setEncoding("utf8").on("data", (text: string) => peer.stderr.push(text));
  connection.onRequest("getSnapshot", (params: GetSnapshotParams) => {
    peer.snapshotCalls.push(params);
    return peer.getSnapshot(params);
  });
  connection.onRequest("apply", (params: ApplyParams) => {
    peer.applies.push(params);
    return peer.apply(params);
  });
  connection.onNotification("error", (params: ErrorNotification) => {
    peer.errors.push(params);
  });
  connection.listen();
  peers.push(peer);
  return peer;
}

async function initialize(peer: Peer) {
  return peer.connection.sendRequest<{ protocolVersion: string; capabilities: Record<string, unknown> }>("initialize", {
    protocolVersion: "1",
    client: { name: "vscode-jsonrpc-e2e", version: "1" },
  });
}

async function status(peer: Peer, channel: string): Promise<ChannelStatus> {
  return peer.connection.sendRequest<ChannelStatus>("channel.status", { channel });
}

/** The rejection of a request, as vscode-jsonrpc's ResponseError. */
async function failure(promise: Promise<unknown>): Promise<ResponseError<unknown>> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ResponseError) return error;
    throw error;
  }
  throw new Error("the request succeeded");
}

afterEach(async () => {
  for (const peer of peers.splice(0)) {
    peer.connection.dispose();
    peer.child.stdin?.end(); // stdin EOF: the sidecar stops its engines and exits 0
    await within(peer.exited, "the sidecar to exit on stdin EOF").catch(() => peer.child.kill("SIGKILL"));
  }
});

describe("vscode-jsonrpc drives statesync-sidecar --framing lsp", () => {
  it("initializes over LSP framing, and a wrong protocol version is a ResponseError -32006", async () => {
    const peer = start();
    const wrong = await failure(peer.connection.sendRequest("initialize", { protocolVersion: "2" }));
    expect(wrong.code).toBe(-32006);
    const result = await initialize(peer);
    expect(result.protocolVersion).toBe("1");
    expect(result.capabilities).toMatchObject({ framing: "lsp", sources: ["store", "host", "channel"] });
    const unknown = await failure(peer.connection.sendRequest("no.such.method", {}));
    expect(unknown.code).toBe(-32601);
  });

  it("opens store channels and answers their apply requests (onRequest), in revision order, until closed", async () => {
    const peer = start();
    await initialize(peer);
    await peer.connection.sendRequest("state.set", { topic: "app-config", data: { theme: "dark" } });

    const opened = await peer.connection.sendRequest("channel.open", { channel: "settings", topic: "app-config" });
    // channel.open is answered after the first apply was answered.
    expect(opened).toEqual({ channel: "settings", topic: "app-config", source: "store", localRevision: "1" });
    expect(peer.applies).toEqual([
      expect.objectContaining({ channel: "settings", topic: "app-config", revision: "1", data: { theme: "dark" } }),
    ]);

    await peer.connection.sendRequest("channel.open", { channel: "main", topic: "app-config" });
    for (let i = 0; i < 50; i++) {
      void peer.connection.sendRequest("state.set", { topic: "app-config", data: { theme: `t${i}` } });
    }
    const last = await peer.connection.sendRequest<{ revision: string }>("state.set", {
      topic: "app-config",
      data: { theme: "last" },
    });
    await until(
      () =>
        ["settings", "main"].every((ch) => peer.applies.some((a) => a.channel === ch && a.revision === last.revision)),
      `both channels to apply revision ${last.revision}`,
    );
    for (const channel of ["settings", "main"]) {
      const revisions = peer.applies.filter((a) => a.channel === channel).map((a) => Number(a.revision));
      expect(revisions).toEqual([...revisions].sort((a, b) => a - b)); // one at a time, increasing
      expect(new Set(revisions).size).toBe(revisions.length);
      // The host records an apply before its answer reaches the sidecar, which advances
      // localRevision only on that answer: wait for it rather than race it.
      const deadline = Date.now() + 5000;
      let local = (await status(peer, channel)).localRevision;
      while (local !== last.revision && Date.now() < deadline) {
        local = (await status(peer, channel)).localRevision;
      }
      expect(local).toBe(last.revision);
    }
    const list = await peer.connection.sendRequest<{ channels: ChannelStatus[] }>("channel.list", {});
    expect(list.channels.map((c) => c.channel).sort()).toEqual(["main", "settings"]);

    expect(await peer.connection.sendRequest("channel.close", { channel: "settings" })).toEqual({
      channel: "settings",
      localRevision: last.revision,
    });
    const appliedBefore = peer.applies.filter((a) => a.channel === "settings").length;
    const after = await peer.connection.sendRequest<{ revision: string }>("state.set", {
      topic: "app-config",
      data: { theme: "after-close" },
    });
    await until(() => peer.applies.some((a) => a.channel === "main" && a.revision === after.revision), "main to apply");
    expect(peer.applies.filter((a) => a.channel === "settings").length).toBe(appliedBefore); // quiescent
    expect((await failure(status(peer, "settings"))).code).toBe(-32001);
  });

  it("answers getSnapshot for channel and host sources, and invalidate notifications trigger refreshes", async () => {
    const peer = start();
    await initialize(peer);
    const revisions: Record<string, number> = { draft: 1, shared: 1 };
    peer.getSnapshot = ({ topic, channel }) => ({
      revision: String(revisions[topic] ?? 0),
      data: { topic, from: channel === undefined ? "host" : channel, n: revisions[topic] },
    });

    // source "channel": the window answers for its own channel.
    await peer.connection.sendRequest("channel.open", { channel: "editor", topic: "draft", source: "channel" });
    expect(peer.snapshotCalls).toEqual([{ topic: "draft", channel: "editor" }]);
    // source "host": one answer for every channel of the topic, asked without a channel.
    await peer.connection.sendRequest("channel.open", { channel: "h1", topic: "shared", source: "host" });
    await peer.connection.sendRequest("channel.open", { channel: "h2", topic: "shared", source: "host" });
    expect(
      peer.snapshotCalls.filter((call) => call.topic === "shared").every((call) => call.channel === undefined),
    ).toBe(true);

    revisions.shared = 2;
    revisions.draft = 5;
    void peer.connection.sendNotification("invalidate", { topic: "shared", revision: "2" });
    void peer.connection.sendNotification("invalidate", { topic: "draft", revision: "5", channel: "editor" });
    await until(
      () =>
        ["h1", "h2"].every((ch) => peer.applies.some((a) => a.channel === ch && a.revision === "2")) &&
        peer.applies.some((a) => a.channel === "editor" && a.revision === "5"),
      "the invalidated channels to apply the new snapshots",
    );
    expect(peer.applies.find((a) => a.channel === "h2" && a.revision === "2")?.data).toEqual({
      topic: "shared",
      from: "host",
      n: 2,
    });
    expect(peer.applies.find((a) => a.channel === "editor" && a.revision === "5")?.data).toEqual({
      topic: "draft",
      from: "editor",
      n: 5,
    });
    // As a request, invalidate says how many channels it reached.
    expect(await peer.connection.sendRequest("invalidate", { topic: "shared", revision: "2" })).toEqual({
      delivered: 2,
    });
  });

  it("receives error notifications (onNotification): protocol, getSnapshot and apply failures", async () => {
    const peer = start(["--call-timeout", "2s"]);
    await initialize(peer);
    let revision = 1;
    let failSnapshots = false;
    peer.getSnapshot = () => {
      if (failSnapshots) throw new ResponseError(-32050, "the backend is down", { retryable: true });
      return { revision: String(revision), data: { revision } };
    };
    await peer.connection.sendRequest("channel.open", { channel: "w", topic: "t", source: "channel" });

    // A non-canonical revision in a notification: reported, ignored, the sidecar keeps serving.
    void peer.connection.sendNotification("invalidate", { topic: "t", revision: "007", channel: "w" });
    await until(() => peer.errors.some((e) => e.phase === "protocol"), "a protocol error notification");
    expect(peer.errors.find((e) => e.phase === "protocol")).toMatchObject({
      phase: "protocol",
      error: { code: -32602, message: expect.stringContaining("007") },
    });

    // A getSnapshot answered with an error: the refresh fails with -32007, and it is reported.
    failSnapshots = true;
    const refresh = await failure(peer.connection.sendRequest("channel.refresh", { channel: "w" }));
    expect(refresh.code).toBe(-32007);
    expect(peer.errors.find((e) => e.phase === "getSnapshot")).toMatchObject({
      channel: "w",
      topic: "t",
      error: { code: -32050, message: expect.stringContaining("the backend is down") },
    });

    // An apply answered with an error: "not applied", localRevision stays.
    failSnapshots = false;
    revision = 2;
    peer.apply = () => {
      throw new ResponseError(-32060, "the view refused it");
    };
    void peer.connection.sendNotification("invalidate", { topic: "t", revision: "2", channel: "w" });
    await until(() => peer.errors.some((e) => e.phase === "apply"), "an apply error notification");
    expect(peer.errors.find((e) => e.phase === "apply")).toMatchObject({
      channel: "w",
      error: { code: -32060, message: expect.stringContaining("the view refused it") },
    });
    expect((await status(peer, "w")).localRevision).toBe("1");

    // Once the view applies again, a refresh catches up.
    peer.apply = () => ({});
    expect(await peer.connection.sendRequest("channel.refresh", { channel: "w" })).toEqual({
      channel: "w",
      localRevision: "2",
    });
    expect((await status(peer, "w")).counters.errors).toBeGreaterThanOrEqual(2); // the fetch and the apply
  });

  it("carries a 2 MiB multi-byte state both ways (Content-Length counts bytes), then shuts down cleanly", async () => {
    const peer = start();
    await initialize(peer);
    const text = "aé€😀".repeat(210_000); // ~2.1 MB of UTF-8, 1- to 4-byte characters
    await peer.connection.sendRequest("state.set", { topic: "big", data: { text } });
    await peer.connection.sendRequest("channel.open", { channel: "big-window", topic: "big" });
    expect(peer.applies.at(-1)?.data).toEqual({ text });
    const got = await peer.connection.sendRequest<{ data: { text: string } }>("state.get", { topic: "big" });
    expect(got.data.text).toBe(text);

    expect(await peer.connection.sendRequest("shutdown", {})).toEqual({});
    expect(await within(peer.exited, "the sidecar to exit after shutdown")).toBe(0);
    expect(peer.stderr.join("")).not.toMatch(/panic/i);
  });
});
