import { describe, expect, it } from "vitest";
import { firstDuplicateMember, loneSurrogateAt, readWindowMessage } from "../src/window-message.js";

describe("the relay's reading of a window message", () => {
  it("finds a member named twice in one object, at any depth, names compared after their escapes", () => {
    const cases: [string, string | undefined][] = [
      ['{"a":1,"b":2}', undefined],
      ['{"a":1,"a":2}', "a"],
      ['{"a":1,"\\u0061":2}', "a"],
      ['{"p":{"x":1,"y":{"x":2}}}', undefined],
      ['{"p":{"x":1,"y":2,"x":3}}', "p.x"],
      ['{"p":[{"x":1},{"x":2}]}', undefined],
      ['{"p":[{"x":1,"x":2}]}', "p.[].x"],
      // Braces, commas, quotes and backslashes inside strings are text, not structure.
      ['{"a":"}{,\\"a\\":","b":"\\\\","c":["a","a"]}', undefined],
      ['{"a\\\\":1,"a\\\\":2}', "a\\"],
      ['["a","a",{"k":1},{"k":2}]', undefined],
    ];
    for (const [text, want] of cases) {
      expect(() => JSON.parse(text), text).not.toThrow();
      expect(firstDuplicateMember(text), text).toBe(want);
    }
  });

  it("tells lone surrogates from pairs", () => {
    expect(loneSurrogateAt("plain")).toBe(-1);
    expect(loneSurrogateAt("\u{1f600}x")).toBe(-1);
    expect(loneSurrogateAt("c\ud800")).toBe(1);
    expect(loneSurrogateAt("c\udc00\ud800")).toBe(1);
    expect(loneSurrogateAt("\ud83d\ude00\ud83d")).toBe(2);
  });

  it("refuses what it cannot read, naming the member and the rule, and bounds what it echoes", () => {
    const long = "x".repeat(10_000);
    const refused = readWindowMessage({
      jsonrpc: "2.0",
      id: 1,
      method: "channel.close",
      params: { channel: `${long}\ud800` },
    });
    expect(refused).toMatchObject({ kind: "refused", id: 1, code: -32602 });
    expect(refused.kind === "refused" && refused.message.length).toBeLessThan(400);
    expect(
      readWindowMessage('{"jsonrpc":"2.0","id":2,"method":"state.get","params":{"topic":"t"},"Method":"shutdown"}'),
    ).toMatchObject({
      kind: "refused",
      id: 2,
      code: -32600,
      message: expect.stringContaining('member "Method" differs only in case from "method"'),
    });
    expect(
      readWindowMessage(
        '{"jsonrpc":"2.0","id":3,"method":"invalidate","params":{"topic":"t","revision":"1","timestampMs":1e400}}',
      ),
    ).toMatchObject({
      kind: "refused",
      code: -32602,
      message: expect.stringContaining('"params.timestampMs" is number Infinity: send a finite number'),
    });
    expect(readWindowMessage("{not json")).toMatchObject({ kind: "refused", id: null, code: -32700 });
    expect(readWindowMessage(new Map())).toMatchObject({ kind: "refused", code: -32600 });
    expect(readWindowMessage({ jsonrpc: "2.0", id: 4, method: "apply", params: {} })).toMatchObject({ code: -32601 });
  });

  it("reads the members it knows into a new object and leaves the rest behind", () => {
    const params = { topic: "t", revision: "2", channel: "c", custom: { deep: true } };
    const reading = readWindowMessage({ jsonrpc: "2.0", method: "invalidate", params });
    expect(reading).toEqual({
      kind: "notification",
      method: "invalidate",
      params: { topic: "t", revision: "2", channel: "c" },
    });
    expect(reading.kind === "notification" && reading.params).not.toBe(params);
  });

  it("reads the delta options of channel.open and state.patch (issue 15), refusing what the sidecar would", () => {
    const open = {
      channel: "c",
      topic: "t",
      options: { deltas: true, paths: ["/settings/theme", "/a~1b"] },
    };
    expect(readWindowMessage({ jsonrpc: "2.0", id: 1, method: "channel.open", params: open })).toEqual({
      kind: "request",
      id: 1,
      method: "channel.open",
      params: open,
    });
    const patch = {
      topic: "t",
      patch: [{ op: "replace", path: "/a", value: 1 }],
      expectedRevision: "3",
      sourceId: "w1",
    };
    expect(readWindowMessage({ jsonrpc: "2.0", id: 2, method: "state.patch", params: patch })).toEqual({
      kind: "request",
      id: 2,
      method: "state.patch",
      params: patch,
    });
    const refusals: [unknown, string][] = [
      [{ ...open, options: { deltas: "yes" } }, '"params.options.deltas" is string "yes": send true or false'],
      [{ ...open, options: { paths: "/a" } }, '"params.options.paths" is string "/a": send an array of strings'],
      [{ ...open, options: { paths: ["/a", 7] } }, '"params.options.paths[1]" is number 7: send a string'],
      [{ ...open, options: { paths: ["/a\ud800"] } }, '"params.options.paths[0]" holds a lone surrogate'],
      [{ ...open, options: { Deltas: true } }, 'member "params.options.Deltas" differs only in case from "deltas"'],
    ];
    for (const [params, message] of refusals) {
      expect(readWindowMessage({ jsonrpc: "2.0", id: 3, method: "channel.open", params })).toMatchObject({
        kind: "refused",
        code: -32602,
        message: expect.stringContaining(message),
      });
    }
    expect(
      readWindowMessage({ jsonrpc: "2.0", id: 4, method: "state.patch", params: { ...patch, origin: "s" } }),
    ).toMatchObject({
      kind: "refused",
      code: -32602,
      message: expect.stringContaining('"params.origin" is unknown'),
    });
    expect(readWindowMessage({ jsonrpc: "2.0", id: 5, method: "state.patch", params: { topic: "t" } })).toMatchObject({
      kind: "refused",
      message: expect.stringContaining('"params.patch" is missing'),
    });
  });
});
