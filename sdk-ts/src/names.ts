/**
 * The largest topic or channel name the sidecar accepts, in bytes of UTF-8 (the sidecar's
 * `engine.MaxNameBytes`). Names are compared byte for byte: never trimmed, case-folded or
 * normalized.
 */
export const MAX_NAME_BYTES = 1024;

/** Bytes of `s` in UTF-8; a lone surrogate counts as U+FFFD (3 bytes), as it is sent. */
export function utf8Length(s: string): number {
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (code < 0x80) {
      bytes += 1;
    } else if (code < 0x800) {
      bytes += 2;
    } else if (code >= 0xd800 && code <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

/**
 * Why `topic` is not a topic the sidecar accepts, or undefined if it is: a string with at
 * least one character that `trim()` keeps, at most MAX_NAME_BYTES bytes of UTF-8. The
 * sidecar applies the same rule (testdata/names.json holds the vectors both check).
 */
export function topicProblem(topic: unknown): string | undefined {
  if (typeof topic !== "string" || topic.trim() === "") {
    return 'topic: want a non-empty string such as "app-config"';
  }
  const bytes = utf8Length(topic);
  if (bytes > MAX_NAME_BYTES) {
    return `topic: is ${bytes} bytes long, over the limit of ${MAX_NAME_BYTES} bytes: use a short stable name such as "app-config"`;
  }
  return undefined;
}

/** The longest prefix of `s`, on a character boundary, of at most `limit` bytes of UTF-8. */
export function cutToBytes(s: string, limit: number): string {
  let bytes = 0;
  let end = 0;
  for (const char of s) {
    bytes += utf8Length(char);
    if (bytes > limit) {
      break;
    }
    end += char.length;
  }
  return s.slice(0, end);
}
