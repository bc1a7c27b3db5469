import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { cutToBytes, MAX_NAME_BYTES, topicProblem, utf8Length } from "../src/names.js";

// The language-neutral vectors the Go engine loops over too (engine.TestNameVectors): the
// SDK and the sidecar accept the same topics.
const vectorsPath = fileURLToPath(new URL("../../testdata/names.json", import.meta.url));

interface NameCase {
  description: string;
  name: string;
  repeat?: number;
  valid: boolean;
}
type Group = { description: string; cases: NameCase[] };

function loadVectors(): Group[] {
  if (!existsSync(vectorsPath)) {
    throw new Error(`shared vectors missing at ${vectorsPath}: testdata/names.json belongs to the repository`);
  }
  return JSON.parse(readFileSync(vectorsPath, "utf8")) as Group[];
}

describe("shared vectors: testdata/names.json", () => {
  for (const group of loadVectors()) {
    describe(group.description, () => {
      for (const c of group.cases) {
        it(c.description, () => {
          const name = c.name.repeat(c.repeat ?? 1);
          const problem = topicProblem(name);
          if (c.valid) {
            expect(problem, JSON.stringify(name)).toBeUndefined();
          } else {
            expect(problem, JSON.stringify(name)).toMatch(/^topic: /);
          }
        });
      }
    });
  }
});

describe("name helpers beyond the vectors", () => {
  it("count UTF-8 bytes as TextEncoder writes them, lone surrogates included", () => {
    for (const s of ["", "a", "é", "€", "😀", "a😀b", "\ud800", "\udc00x", "\ud83d"]) {
      expect(utf8Length(s), JSON.stringify(s)).toBe(new TextEncoder().encode(s).length);
    }
  });

  it("cut on a character boundary, never inside a surrogate pair", () => {
    expect(cutToBytes("😀😀", 7)).toBe("😀");
    expect(cutToBytes("é".repeat(600), MAX_NAME_BYTES)).toBe("é".repeat(512));
    expect(cutToBytes("short", MAX_NAME_BYTES)).toBe("short");
  });

  it("refuse what is not a string", () => {
    for (const value of [undefined, null, 42, {}, ["app-config"]]) {
      expect(topicProblem(value)).toMatch(/^topic: /);
    }
  });
});
