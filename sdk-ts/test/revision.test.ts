import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compareRevisions, isCanonicalRevision } from "../src/revision.js";

// The language-neutral vectors the Go engine loops over too.
const vectorsPath = fileURLToPath(new URL("../../testdata/revisions.json", import.meta.url));

interface ValidityCase {
  description: string;
  revision: string;
  valid: boolean;
}
interface CompareCase {
  description: string;
  a: string;
  b: string;
  want: -1 | 0 | 1;
}
type Group = { description: string; cases: (ValidityCase | CompareCase)[] };

function loadVectors(): Group[] {
  if (!existsSync(vectorsPath)) {
    throw new Error(`shared vectors missing at ${vectorsPath}: testdata/revisions.json belongs to the repository`);
  }
  return JSON.parse(readFileSync(vectorsPath, "utf8")) as Group[];
}

const groups = loadVectors();

describe("shared vectors: testdata/revisions.json", () => {
  it("has both validity and comparison cases", () => {
    const cases = groups.flatMap((group) => group.cases);
    expect(cases.some((c) => "valid" in c)).toBe(true);
    expect(cases.some((c) => "want" in c)).toBe(true);
  });

  for (const group of groups) {
    describe(group.description, () => {
      for (const c of group.cases) {
        if ("valid" in c) {
          it(c.description, () => {
            expect(isCanonicalRevision(c.revision), JSON.stringify(c.revision)).toBe(c.valid);
          });
        } else {
          it(c.description, () => {
            expect(compareRevisions(c.a, c.b), `compare(${c.a}, ${c.b})`).toBe(c.want);
            expect(compareRevisions(c.b, c.a), `compare(${c.b}, ${c.a})`).toBe(-c.want || 0);
          });
        }
      }
    });
  }
});

describe("revision helpers beyond the vectors", () => {
  it("never throw in isCanonicalRevision, whatever the value", () => {
    for (const value of [undefined, null, 42, 4.2, {}, [], ["1"], true, Symbol("x"), 10n]) {
      expect(isCanonicalRevision(value)).toBe(false);
    }
  });

  it("refuse to order non-canonical revisions rather than order them wrong", () => {
    expect(() => compareRevisions("007", "7")).toThrow(TypeError);
    expect(() => compareRevisions("1", "-1")).toThrow(/not a canonical/);
  });
});
