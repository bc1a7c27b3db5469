import { describe, expect, it } from "vitest";
import { connect } from "../src/client.js";
import { createMemoryLinkPair } from "../src/links/memory.js";
import type { ErrorNotification } from "../src/protocol.js";
import { AccessDenied, createSidecarHost, type WindowAccess } from "../src/relay.js";
import { compileAccess, deniedCall } from "../src/window-access.js";
import { gate, within } from "./helpers/async.js";
import { FakeSidecar } from "./helpers/fake-sidecar.js";

describe("window access rules", () => {
  it("match exact names and prefixes ending in *, and nothing a rule leaves out", () => {
    const access = compileAccess({ open: ["app-config", "settings/*"], write: ["settings/theme"] });
    expect(access.may("open", "app-config")).toBe(true);
    expect(access.may("open", "app-config2")).toBe(false);
    expect(access.may("open", "settings/")).toBe(true);
    expect(access.may("open", "settings/theme")).toBe(true);
    expect(access.may("open", "settings")).toBe(false);
    expect(access.may("write", "settings/theme")).toBe(true);
    expect(access.may("write", "settings/font")).toBe(false);
    expect(compileAccess({ open: ["*"] }).may("open", "anything")).toBe(true);
    expect(compileAccess({}).may("open", "anything")).toBe(false);
  });

  it("refuse rules that cannot be read, naming the entry", () => {
    expect(() => compileAccess({ open: ["a*b"] })).toThrow(/access\.open\[0\].*"\*" may only end a pattern/);
    expect(() => compileAccess({ write: [""] })).toThrow(/access\.write\[0\]/);
    expect(() => compileAccess({ open: "a" as unknown as string[] })).toThrow(/access\.open is not an array/);
    expect(() => compileAccess({ invalidate: "yes" as unknown as boolean })).toThrow(/access\.invalidate/);
  });

  it("name the rule a call broke; methods no rule covers are refused", () => {
    const access = compileAccess({ open: ["t"], write: [], invalidate: false });
    expect(deniedCall(access, "channel.open", { channel: "c", topic: "t" })).toBeUndefined();
    expect(deniedCall(access, "channel.close", { channel: "c" })).toBeUndefined();
    expect(deniedCall(access, "state.set", { topic: "t", data: 1 })).toMatchObject({
      code: AccessDenied,
      data: { rule: "write", method: "state.set", topic: "t" },
    });
    expect(deniedCall(access, "invalidate", { topic: "t", revision: "1" })?.data.rule).toBe("invalidate");
    expect(deniedCall(access, "state.patch", { topic: "t", patch: [] })).toMatchObject({
      code: AccessDenied,
      data: { rule: "write", method: "state.patch", topic: "t" },
    });
    expect(deniedCall(compileAccess({ write: ["t"] }), "state.patch", { topic: "t", patch: [] })).toBeUndefined();
    expect(deniedCall(access, "state.merge", { topic: "t" })?.data.rule).toBe("method");
  });

  it("keep topic-wide sidecar errors of other topics from a window under rules", async () => {
    const [hostEnd, sidecarEnd] = createMemoryLinkPair();
    const sidecar = new FakeSidecar(sidecarEnd);
    const host = createSidecarHost({ link: hostEnd });
    const attach = async (access?: WindowAccess) => {
      const [windowEnd, relayEnd] = createMemoryLinkPair();
      host.attachWindow(relayEnd, access === undefined ? {} : { access });
      const client = await within(connect(windowEnd), "window connect");
      const seen: ErrorNotification[] = [];
      const heard = gate();
      client.onError((params) => {
        seen.push(params);
        if (params.error.message === "last") heard.open();
      });
      return { seen, heard };
    };
    const ruled = await attach({ open: ["mine"] });
    const free = await attach();
    const theirs = { phase: "getSnapshot", topic: "theirs", error: { message: "about theirs" } };
    const mine = { phase: "getSnapshot", topic: "mine", error: { message: "about mine" } };
    const last = { phase: "protocol", error: { message: "last" } };
    sidecar.notify("error", theirs);
    sidecar.notify("error", mine);
    sidecar.notify("error", last);
    await within(Promise.all([ruled.heard.promise, free.heard.promise]), "the last error in both windows");
    expect(ruled.seen).toEqual([mine, last]);
    expect(free.seen).toEqual([theirs, mine, last]);
  });
});
