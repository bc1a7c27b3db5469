import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { JsonRpcMessage } from "../../src/link.js";
import { createNodeLink } from "../../src/links/node.js";
import { gate, within } from "../helpers/async.js";
import { bigApply, burst, MIB } from "../helpers/streams.js";

const echoChild = fileURLToPath(new URL("../fixtures/echo-child.mjs", import.meta.url));

function spawnEcho(mode = "echo", extra: Parameters<typeof createNodeLink>[1] = {}) {
  return createNodeLink(process.execPath, { args: [echoChild, mode], ...extra });
}

/** Sends messages and resolves with the first `count` that come back. */
function roundTrip(link: ReturnType<typeof spawnEcho>, messages: JsonRpcMessage[]) {
  const received: unknown[] = [];
  const done = gate<unknown[]>();
  link.onMessage((message) => {
    received.push(message);
    if (received.length === messages.length) done.open(received);
  });
  for (const message of messages) {
    link.send(message);
  }
  return within(done.promise, `${messages.length} messages back`, 15_000);
}

describe("Node child-process link", () => {
  it("carries 1 MiB messages through the child's stdio, re-cut into arbitrary chunks", async () => {
    const link = spawnEcho();
    const messages = [bigApply(1, MIB), bigApply(2, MIB)];
    expect(await roundTrip(link, messages)).toEqual(messages);
    await link.dispose();
  });

  it("carries a burst of 10,000 messages in order", async () => {
    const link = spawnEcho();
    const messages = burst(10_000);
    expect(await roundTrip(link, messages)).toEqual(messages);
    await link.dispose();
  });

  it("forwards stderr line by line to onStderr", async () => {
    const lines: string[] = [];
    const twoLines = gate();
    const link = spawnEcho("stderr", {
      onStderr: (line) => {
        lines.push(line);
        if (lines.length === 2) twoLines.open();
      },
    });
    await within(twoLines.promise, "two stderr lines");
    expect(lines).toEqual(["level=info msg=starting", "level=debug msg=partial line"]);
    await link.dispose();
  });

  it("dispose sends shutdown, ends stdin, and the link closes without an error", async () => {
    const link = spawnEcho();
    const closed = gate<Error | undefined>();
    link.onClose((error) => closed.open(error));
    await within(link.dispose(), "dispose");
    expect(await within(closed.promise, "close")).toBeUndefined();
    expect(link.process.exitCode).toBe(0);
    expect(() => link.send({ jsonrpc: "2.0", method: "x" })).toThrow(/closed/);
    await link.dispose(); // twice is fine
  });

  it("kills a child that does not exit within the grace period", async () => {
    const link = spawnEcho("stubborn", { shutdownGraceMs: 50 });
    await within(link.dispose(), "dispose");
    expect(link.process.signalCode).toBe("SIGKILL");
  });

  it("closes with an error naming the binary when it cannot be spawned", async () => {
    const link = createNodeLink("/nonexistent/statesync-sidecar");
    const closed = gate<Error | undefined>();
    link.onClose((error) => closed.open(error));
    const error = await within(closed.promise, "close");
    expect(error?.message).toMatch(/\/nonexistent\/statesync-sidecar: spawn .*ENOENT/);
  });

  it("closes with an error when the child exits on its own", async () => {
    const link = createNodeLink(process.execPath, { args: ["-e", "process.exit(3)"] });
    const closed = gate<Error | undefined>();
    link.onClose((error) => closed.open(error));
    expect((await within(closed.promise, "close"))?.message).toMatch(/exited \(code 3/);
  });
});
