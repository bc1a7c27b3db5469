import type { JsonRpcMessage } from "./link.js";

/** Serialises one message as an NDJSON line. JSON.stringify never emits a raw newline. */
export function encodeLine(message: JsonRpcMessage): string {
  return `${JSON.stringify(message)}\n`;
}

export interface LineDecoderOptions {
  /** Called with each message parsed from a complete line. */
  onMessage(message: unknown): void;
  /** Called with a line that is not JSON; such lines are skipped. */
  onInvalidLine?(line: string, error: unknown): void;
  /**
   * Take a chunk that ends without a newline as a whole line when what is buffered so far
   * parses as a JSON object. For transports that strip the newline of each line they
   * deliver (the Tauri shell plugin in text mode): no proper prefix of a JSON object
   * text is itself a JSON object, so a message is never cut short, and the newline that
   * may still follow only makes a blank line, which is skipped.
   */
  acceptUnterminatedObjects?: boolean;
}

export interface LineDecoder {
  /** Feeds text as it came off the stream: part of a line, a line, or many. */
  push(chunk: string): void;
  /** Bytes of an incomplete line held back, waiting for its end. */
  readonly pendingLength: number;
}

/**
 * Reassembles NDJSON lines from chunks split at arbitrary places. Each chunk is scanned
 * once and the parts of a long line are joined once, so a 1 MiB message arriving in
 * 64 KiB chunks costs linear time.
 */
export function createLineDecoder(options: LineDecoderOptions): LineDecoder {
  let parts: string[] = [];
  let pendingLength = 0;

  const emit = (raw: string): void => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "") {
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (error) {
      options.onInvalidLine?.(line, error);
      return;
    }
    options.onMessage(message);
  };

  return {
    get pendingLength() {
      return pendingLength;
    },
    push(chunk: string): void {
      let start = 0;
      for (let newline = chunk.indexOf("\n"); newline !== -1; newline = chunk.indexOf("\n", start)) {
        const tail = chunk.slice(start, newline);
        const line = parts.length === 0 ? tail : parts.join("") + tail;
        parts = [];
        pendingLength = 0;
        start = newline + 1;
        emit(line);
      }
      if (start < chunk.length) {
        parts.push(start === 0 ? chunk : chunk.slice(start));
        pendingLength += chunk.length - start;
        if (options.acceptUnterminatedObjects && chunk.trimEnd().endsWith("}")) {
          const message = parseObject(parts.join(""));
          if (message !== undefined) {
            parts = [];
            pendingLength = 0;
            options.onMessage(message);
          }
        }
      }
    },
  };
}

function parseObject(text: string): object | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}
