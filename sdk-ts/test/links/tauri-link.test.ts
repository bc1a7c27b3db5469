import { beforeEach, describe, expect, it, vi } from "vitest";
import { encodeLine } from "../../src/framing.js";
import type { JsonRpcMessage } from "../../src/link.js";
import { createTauriLink } from "../../src/links/tauri.js";
import { gate, within } from "../helpers/async.js";
import { bigApply, burst, MIB, randomByteChunks, randomChunks, seededRandom } from "../helpers/streams.js";

// A stand-in for @tauri-apps/plugin-shell's Command, which needs a Tauri runtime: the test
// plays the sidecar's stdout as the plugin would emit it.
const shell = vi.hoisted(() => {
  type Listener = (payload: never) => void;
  class Emitter {
    listeners = new Map<string, Listener[]>();
    on(event: string, listener: Listener) {
      this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
      return this;
    }
    emit(event: string, payload: unknown) {
      for (const listener of this.listeners.get(event) ?? []) (listener as (p: unknown) => void)(payload);
    }
  }
  class FakeCommand extends Emitter {
    static last: FakeCommand | undefined;
    stdout = new Emitter();
    stderr = new Emitter();
    written: string[] = [];
    killed = 0;
    constructor(
      readonly program: string,
      readonly args: string[],
      readonly options: unknown,
    ) {
      super();
      FakeCommand.last = this;
    }
    static sidecar(program: string, args: string[], options: unknown) {
      return new FakeCommand(program, args, options);
    }
    async spawn() {
      return {
        pid: 42,
        write: async (data: string) => {
          this.written.push(data);
        },
        kill: async () => {
          this.killed++;
          this.emit("close", { code: null, signal: 9 });
        },
      };
    }
  }
  return { FakeCommand };
});

vi.mock("@tauri-apps/plugin-shell", () => ({ Command: shell.FakeCommand }));

function command() {
  const last = shell.FakeCommand.last;
  if (last === undefined) throw new Error("no Command was created");
  return last;
}

async function collect(count: number, feed: () => void): Promise<unknown[]> {
  const link = await createTauriLink();
  const received: unknown[] = [];
  const done = gate<unknown[]>();
  link.onMessage((message) => {
    received.push(message);
    if (received.length === count) done.open(received);
  });
  feed();
  return within(done.promise, `${count} messages`);
}

const utf8 = new TextEncoder();

describe("Tauri shell-plugin link", () => {
  beforeEach(() => {
    shell.FakeCommand.last = undefined;
  });

  it("spawns the sidecar by its externalBin name, in raw mode", async () => {
    await createTauriLink({ args: ["--log-level", "info"] });
    expect(command().program).toBe("binaries/statesync-sidecar");
    expect(command().args).toEqual(["--log-level", "info"]);
    expect(command().options).toEqual({ encoding: "raw" });
  });

  it("reassembles 1 MiB messages from raw byte chunks cut anywhere, inside UTF-8 sequences too", async () => {
    const messages = [bigApply(1, MIB), bigApply(2, MIB)];
    const bytes = utf8.encode(messages.map((m) => encodeLine(m)).join(""));
    const received = await collect(2, () => {
      for (const chunk of randomByteChunks(bytes, seededRandom(11), 65_536)) {
        command().stdout.emit("data", chunk);
      }
    });
    expect(received).toEqual(messages);
  });

  it("reassembles a burst of 10,000 messages from raw chunks", async () => {
    const messages = burst(10_000);
    const bytes = utf8.encode(messages.map((m) => encodeLine(m)).join(""));
    const received = await collect(10_000, () => {
      for (const chunk of randomByteChunks(bytes, seededRandom(5), 500)) {
        command().stdout.emit("data", chunk);
      }
    });
    expect(received).toEqual(messages);
  });

  it("accepts raw chunks as number arrays, the way the plugin's Rust side serialises Vec<u8>", async () => {
    const messages = burst(50);
    const bytes = utf8.encode(messages.map((m) => encodeLine(m)).join(""));
    const received = await collect(50, () => {
      for (const chunk of randomByteChunks(bytes, seededRandom(17), 300)) {
        command().stdout.emit("data", Array.from(chunk));
      }
    });
    expect(received).toEqual(messages);
  });

  it("accepts text mode: one line per event, with or without its newline, or string chunks", async () => {
    const messages: JsonRpcMessage[] = [...burst(3), bigApply(9, 100_000)];
    const received = await collect(7, () => {
      for (const message of messages) command().stdout.emit("data", JSON.stringify(message)); // newline stripped
      for (const message of messages.slice(0, 2)) command().stdout.emit("data", encodeLine(message)); // newline kept
      for (const chunk of randomChunks(encodeLine(messages[3] as JsonRpcMessage), seededRandom(3), 999)) {
        command().stdout.emit("data", chunk);
      }
    });
    expect(received).toEqual([...messages, messages[0], messages[1], messages[3]]);
  });

  it("writes one NDJSON line per message, in order", async () => {
    const link = await createTauriLink();
    const messages = burst(100);
    for (const message of messages) link.send(message);
    await vi.waitFor(() => expect(command().written).toHaveLength(100), { timeout: 2000 });
    expect(command().written).toEqual(messages.map((m) => encodeLine(m)));
  });

  it("closes when the process ends, with an error unless it exited 0", async () => {
    const link = await createTauriLink();
    const closed = gate<Error | undefined>();
    link.onClose((error) => closed.open(error));
    command().emit("close", { code: 1, signal: null });
    expect((await within(closed.promise, "close"))?.message).toMatch(/exited \(code 1/);
    expect(() => link.send({ jsonrpc: "2.0", method: "x" })).toThrow(/closed/);
  });

  it("close() asks the sidecar to shut down, then kills it after the grace period", async () => {
    const link = await createTauriLink({ shutdownGraceMs: 10 });
    const closed = gate<Error | undefined>();
    link.onClose((error) => closed.open(error));
    link.close();
    expect(await within(closed.promise, "close")).toBeUndefined();
    await vi.waitFor(() => expect(command().killed).toBe(1), { timeout: 2000 });
    expect(command().written.map((line) => JSON.parse(line).method)).toEqual(["shutdown"]);
  });
});
