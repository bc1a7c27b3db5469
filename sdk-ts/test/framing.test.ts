import { describe, expect, it } from "vitest";
import { createLineDecoder, encodeLine } from "../src/framing.js";
import { bigApply, burst, MIB, randomChunks, seededRandom } from "./helpers/streams.js";

function decodeAll(chunks: string[], acceptUnterminatedObjects = false) {
  const messages: unknown[] = [];
  const invalid: string[] = [];
  const decoder = createLineDecoder({
    onMessage: (message) => messages.push(message),
    onInvalidLine: (line) => invalid.push(line),
    acceptUnterminatedObjects,
  });
  for (const chunk of chunks) {
    decoder.push(chunk);
  }
  return { messages, invalid, pending: decoder.pendingLength };
}

describe("line decoder", () => {
  const small = [
    { jsonrpc: "2.0", id: 1, result: { text: "a\nb with an escaped newline" } },
    { jsonrpc: "2.0", method: "error", params: { phase: "protocol", error: { message: "π ≠ 3" } } },
  ] as const;
  const text = small.map((m) => encodeLine(m)).join("");

  it("reassembles messages split at every possible place", () => {
    for (let cut = 0; cut <= text.length; cut++) {
      const { messages, pending } = decodeAll([text.slice(0, cut), text.slice(cut)]);
      expect(messages, `cut at ${cut}`).toEqual(small);
      expect(pending).toBe(0);
    }
  });

  it("accepts CRLF, skips blank lines, reports and skips a line that is not JSON", () => {
    const { messages, invalid } = decodeAll(['{"a":1}\r\n', "\n", "  \r\n", "not json\n", '{"b":2}\n']);
    expect(messages).toEqual([{ a: 1 }, { b: 2 }]);
    expect(invalid).toEqual(["not json"]);
  });

  it("holds back an incomplete line until its newline comes", () => {
    const { messages, pending } = decodeAll(['{"a":1}\n{"b":', "2"]);
    expect(messages).toEqual([{ a: 1 }]);
    expect(pending).toBe(6);
  });

  it("reassembles a 1 MiB message from random chunks", () => {
    const message = bigApply(1, MIB);
    const line = encodeLine(message);
    expect(line.length).toBeGreaterThan(MIB);
    for (const seed of [1, 2, 3]) {
      const { messages } = decodeAll(randomChunks(line, seededRandom(seed), 64 * 1024));
      expect(messages).toEqual([message]);
    }
  });

  it("decodes a burst of 10,000 messages in order from random chunks", () => {
    const messages = burst(10_000);
    const text = messages.map((m) => encodeLine(m)).join("");
    const decoded = decodeAll(randomChunks(text, seededRandom(7), 300)).messages;
    expect(decoded).toHaveLength(10_000);
    expect(decoded).toEqual(messages);
  });

  describe("with acceptUnterminatedObjects (the Tauri plugin's text mode drops newlines)", () => {
    it("takes each unterminated whole line as a message", () => {
      const { messages } = decodeAll(['{"a":1}', '{"b":{"c":[2]}}', '{"d":3}'], true);
      expect(messages).toEqual([{ a: 1 }, { b: { c: [2] } }, { d: 3 }]);
    });

    it("skips the newline that may still follow such a line", () => {
      const { messages } = decodeAll(['{"a":1}', "\n", '{"b":2}\n'], true);
      expect(messages).toEqual([{ a: 1 }, { b: 2 }]);
    });

    it("does not cut a message at a '}' inside it", () => {
      const message = { jsonrpc: "2.0" as const, id: 1, result: { text: "}", inner: { x: "}" } } };
      const line = encodeLine(message);
      for (let cut = 1; cut < line.length; cut++) {
        const { messages } = decodeAll([line.slice(0, cut), line.slice(cut)], true);
        expect(messages, `cut at ${cut}`).toEqual([message]);
      }
    });
  });
});
