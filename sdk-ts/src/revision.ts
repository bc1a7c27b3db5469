import type { Revision } from "./protocol.js";

/** The largest revision: the largest u64. */
export const MAX_REVISION = "18446744073709551615";

/**
 * True for a canonical decimal u64 string: digits only, no leading zero (except "0"
 * itself), at most 18446744073709551615. Never throws, whatever the value.
 */
export function isCanonicalRevision(value: unknown): value is Revision {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_REVISION.length) {
    return false;
  }
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 48 || code > 57) {
      return false;
    }
  }
  if (value.length > 1 && value[0] === "0") {
    return false;
  }
  return value.length < MAX_REVISION.length || value <= MAX_REVISION;
}

/**
 * Orders two canonical revisions: -1, 0 or 1 as `a` is older than, equal to or newer
 * than `b`. Canonical strings order by (length, lexicographic), so no BigInt is needed.
 * Throws a TypeError on a non-canonical revision rather than give a wrong order.
 */
export function compareRevisions(a: Revision, b: Revision): -1 | 0 | 1 {
  for (const revision of [a, b]) {
    if (!isCanonicalRevision(revision)) {
      throw new TypeError(`revision ${JSON.stringify(revision)} is not a canonical decimal u64 string`);
    }
  }
  if (a.length !== b.length) {
    return a.length < b.length ? -1 : 1;
  }
  return a === b ? 0 : a < b ? -1 : 1;
}
