import type { JsonRpcMessage } from "../../src/link.js";

/** A small deterministic PRNG (mulberry32), so a failing split can be reproduced. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts text into chunks of 1..maxChunk characters at random places. */
export function randomChunks(text: string, random: () => number, maxChunk: number): string[] {
  const chunks: string[] = [];
  for (let start = 0; start < text.length; ) {
    const size = 1 + Math.floor(random() * maxChunk);
    chunks.push(text.slice(start, start + size));
    start += size;
  }
  return chunks;
}

/** Cuts bytes into chunks of 1..maxChunk bytes at random places (splitting UTF-8 sequences too). */
export function randomByteChunks(bytes: Uint8Array, random: () => number, maxChunk: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let start = 0; start < bytes.length; ) {
    const size = 1 + Math.floor(random() * maxChunk);
    chunks.push(bytes.subarray(start, start + size));
    start += size;
  }
  return chunks;
}

export const MIB = 1024 * 1024;

/**
 * An `apply` request whose data is about `bytes` long, with multi-byte characters and
 * characters JSON escapes, so that splitting a UTF-8 sequence or an escape is exercised.
 */
export function bigApply(id: number, bytes: number): JsonRpcMessage {
  const unit = 'state-sync ✓ «snapshot» "quoted" \\ 😀 ';
  const text = unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
  return {
    jsonrpc: "2.0",
    id,
    method: "apply",
    params: { channel: "w1", topic: "big", revision: String(id), data: { text, nested: { list: [1, 2, 3] } } },
  };
}

/** n small invalidate notifications with increasing revisions. */
export function burst(n: number): JsonRpcMessage[] {
  return Array.from({ length: n }, (_, i) => ({
    jsonrpc: "2.0" as const,
    method: "invalidate",
    params: { topic: "app-config", revision: String(i + 1) },
  }));
}
