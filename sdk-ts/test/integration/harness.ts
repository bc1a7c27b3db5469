import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv2020 } from "ajv/dist/2020.js";
import { expect } from "vitest";
import type { JsonRpcMessage, Link } from "../../src/link.js";
import { createNodeLink, type NodeLink } from "../../src/links/node.js";

const defaultBinary = fileURLToPath(new URL("../../../bin/statesync-sidecar", import.meta.url));

/**
 * The real sidecar binary: $STATESYNC_SIDECAR, else ../bin/statesync-sidecar. Missing is a
 * failure, never a skip: these tests are the proof that the SDK and the binary agree.
 */
export function sidecarBinary(): string {
  const path = process.env.STATESYNC_SIDECAR ?? defaultBinary;
  if (!existsSync(path)) {
    throw new Error(
      `statesync-sidecar not found at ${path}: build it with ` +
        "`cd .. && go build -o bin/statesync-sidecar ./cmd/statesync-sidecar` (or `go tool task build`), " +
        "or point STATESYNC_SIDECAR at a binary",
    );
  }
  return path;
}

export interface Recorded {
  from: "host" | "sidecar";
  message: Record<string, unknown>;
}

/** Wraps a link so that every message both ways lands in the transcript. */
function recording(link: Link, transcript: Recorded[]): Link {
  return {
    send(message: JsonRpcMessage) {
      const copy = structuredClone(message) as Record<string, unknown>;
      link.send(message); // a message the link could not encode never reached the wire: not recorded
      transcript.push({ from: "host", message: copy });
    },
    onMessage(handler) {
      return link.onMessage((message) => {
        transcript.push({ from: "sidecar", message: message as Record<string, unknown> });
        handler(message);
      });
    },
    onClose: (handler) => link.onClose(handler),
    close: () => link.close(),
  };
}

export interface RunningSidecar {
  /** The link for the SDK, recorded. */
  link: Link;
  node: NodeLink;
  transcript: Recorded[];
  stderr: string[];
  /** Shuts the sidecar down and checks the whole transcript against the schema. */
  finish(): Promise<void>;
}

const running = new Set<RunningSidecar>();

export function startSidecar(args: string[] = []): RunningSidecar {
  const stderr: string[] = [];
  const node = createNodeLink(sidecarBinary(), { args, onStderr: (line) => stderr.push(line) });
  const transcript: Recorded[] = [];
  const sidecar: RunningSidecar = {
    link: recording(node, transcript),
    node,
    transcript,
    stderr,
    async finish() {
      running.delete(sidecar);
      await node.dispose();
      expect(node.process.exitCode, `sidecar exit code; stderr:\n${stderr.join("\n")}`).toBe(0);
      checkTranscript(transcript);
    },
  };
  running.add(sidecar);
  return sidecar;
}

/** For afterEach: ends sidecars a failed test left running. */
export async function disposeAll(): Promise<void> {
  await Promise.all([...running].map((sidecar) => sidecar.node.dispose()));
  running.clear();
}

// ---- the wire contract: schema/protocol.schema.json ----

const schemaPath = fileURLToPath(new URL("../../../schema/protocol.schema.json", import.meta.url));
let ajv: Ajv2020 | undefined;
let schemaId = "";

function validator(definition: string) {
  if (ajv === undefined) {
    if (!existsSync(schemaPath)) {
      throw new Error(`the wire schema is missing at ${schemaPath}`);
    }
    const schema = JSON.parse(readFileSync(schemaPath, "utf8")) as { $id: string };
    ajv = new Ajv2020({ strict: true, allErrors: true });
    ajv.addSchema(schema);
    schemaId = schema.$id;
  }
  const validate = ajv.getSchema(`${schemaId}#/$defs/${definition}`);
  if (validate === undefined) {
    throw new Error(`schema has no $defs/${definition}`);
  }
  return validate;
}

/**
 * Checks recorded traffic as schema/README.md asks: every sidecar line against
 * sidecarMessage, every host line against hostMessage, and every result against
 * <method>.result of the request it answers.
 */
export function checkTranscript(transcript: Recorded[]): void {
  const methods = { host: new Map<unknown, string>(), sidecar: new Map<unknown, string>() };
  for (const { from, message } of transcript) {
    const envelope = validator(from === "sidecar" ? "sidecarMessage" : "hostMessage");
    expect(envelope(message), `${from} message ${JSON.stringify(message).slice(0, 300)}: ${ajvErrors(envelope)}`).toBe(
      true,
    );
    if (typeof message.method === "string" && message.id !== undefined) {
      methods[from].set(message.id, message.method);
    }
  }
  for (const { from, message } of transcript) {
    if (!("result" in message)) continue;
    // A response answers a request that came the other way.
    const method = methods[from === "sidecar" ? "host" : "sidecar"].get(message.id);
    if (method === undefined) continue;
    const result = validator(`${method}.result`);
    expect(
      result(message.result),
      `${method} result ${JSON.stringify(message.result).slice(0, 300)}: ${ajvErrors(result)}`,
    ).toBe(true);
  }
}

function ajvErrors(validate: { errors?: unknown }): string {
  return JSON.stringify(validate.errors ?? []).slice(0, 600);
}

/** Counts the sidecar's requests of a method in a transcript. */
export function countFromSidecar(transcript: Recorded[], method: string): number {
  return transcript.filter((r) => r.from === "sidecar" && r.message.method === method).length;
}

/** True once the sidecar has answered a host request of this method (the first one when several). */
export function answered(transcript: Recorded[], method: string): boolean {
  const ids = new Set(
    transcript.filter((r) => r.from === "host" && r.message.method === method).map((r) => r.message.id),
  );
  return transcript.some((r) => r.from === "sidecar" && r.message.method === undefined && ids.has(r.message.id));
}
