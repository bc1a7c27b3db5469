import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// What a user of the package gets: `npm pack` on a fresh checkout of sdk-ts (no dist/, so
// the `prepack` script has to build it), installed offline into an empty project, used from
// ESM and from CommonJS. The checkout is a copy in a temp folder, so sdk-ts/dist is never
// touched while other tests run.

const run = promisify(execFile);
const sdk = fileURLToPath(new URL("../../", import.meta.url));
interface Conditional {
  types: string;
  default: string;
}
const pkg = JSON.parse(readFileSync(join(sdk, "package.json"), "utf8")) as {
  name: string;
  version: string;
  license: string;
  repository: { type: string; url: string; directory: string };
  exports: Record<string, { import: Conditional; require: Conditional }>;
  dependencies?: Record<string, string>;
};
const subpaths = Object.keys(pkg.exports); // ".", "./node", …
const specifier = (subpath: string) => (subpath === "." ? pkg.name : `${pkg.name}${subpath.slice(1)}`);
const tsc = join(sdk, "node_modules", "typescript", "bin", "tsc");
/** Subpaths that import their framework at run time, so need it installed to load. */
const importsPeer = new Set(["./tauri", "./vue", "./react"]);

let work = "";
let tarballName = "";
let consumer = "";
let installed = "";
let packed: string[] = [];

async function npm(args: string[], cwd: string) {
  return run("npm", args, { cwd, shell: process.platform === "win32", maxBuffer: 16 * 1024 * 1024 });
}

async function node(script: string, cwd: string, type: "module" | "commonjs" = "module"): Promise<string> {
  const { stdout } = await run(process.execPath, [`--input-type=${type}`, "-e", script], { cwd });
  return stdout;
}

/** The exports of src/ for a subpath, as the package's every build must have them. */
async function sourceKeys(subpath: string): Promise<string[]> {
  const source = subpath === "." ? "index" : subpath.slice(2);
  const url = new URL(`../../src/${source}.ts`, import.meta.url).href;
  return Object.keys(await import(/* @vite-ignore */ url)).sort();
}

/** Links a package from sdk-ts's node_modules into the consumer, as if the user had installed it. */
function provide(name: string) {
  const target = join(consumer, "node_modules", name);
  mkdirSync(dirname(target), { recursive: true });
  symlinkSync(join(sdk, "node_modules", name), target, "junction");
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "state-sync-pack-"));
  const checkout = join(work, "checkout");
  cpSync(sdk, checkout, {
    recursive: true,
    filter: (source) => {
      const top = relative(sdk, source).split(/[\\/]/)[0];
      return top !== "node_modules" && top !== "dist";
    },
  });
  // The build tools come from the real install; npm pack never packs node_modules.
  symlinkSync(join(sdk, "node_modules"), join(checkout, "node_modules"), "junction");
  await npm(["pack", "--pack-destination", work], checkout);
  const tarball = readdirSync(work).find((name) => name.endsWith(".tgz"));
  if (tarball === undefined) throw new Error(`npm pack wrote no tarball in ${work}`);
  tarballName = tarball;

  consumer = join(work, "consumer");
  mkdirSync(consumer);
  writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  // An empty cache: nothing can come from anywhere but the tarball.
  await npm(
    ["install", "--offline", "--no-audit", "--no-fund", "--cache", join(work, "npm-cache"), join(work, tarball)],
    consumer,
  );
  installed = join(consumer, "node_modules", ...pkg.name.split("/"));
  packed = listFiles(installed);
}, 180_000);

afterAll(() => {
  if (work !== "") rmSync(work, { recursive: true, force: true });
});

function listFiles(root: string, dir = root): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? listFiles(root, join(dir, entry.name))
      : [relative(root, join(dir, entry.name)).split("\\").join("/")],
  );
}

describe("the npm package", () => {
  it("is the file the README names, with the license and the repository", () => {
    expect(tarballName).toBe(`state-sync-sdk-${pkg.version}.tgz`);
    const readme = readFileSync(join(sdk, "README.md"), "utf8");
    expect(readme).toContain("npm install ./state-sync-sdk-<version>.tgz");
    expect(pkg.license).toBe("MIT");
    expect(readFileSync(join(installed, "LICENSE"), "utf8")).toBe(readFileSync(join(sdk, "..", "LICENSE"), "utf8"));
    expect(readFileSync(join(installed, "LICENSE"), "utf8")).toMatch(/^MIT License\n/);
    expect(pkg.repository).toEqual({
      type: "git",
      url: expect.stringMatching(/^git\+https:\/\/github\.com\/[\w.-]+\/[\w.-]+\.git$/),
      directory: "sdk-ts",
    });
  });

  it("holds the ESM and CommonJS builds and types of every export, the README, the LICENSE and nothing else", () => {
    for (const subpath of subpaths) {
      const target = pkg.exports[subpath];
      expect(Object.keys(target ?? {}), `exports["${subpath}"] conditions`).toEqual(["import", "require"]);
      for (const [condition, file] of [
        ["import.default", target?.import.default],
        ["import.types", target?.import.types],
        ["require.default", target?.require.default],
        ["require.types", target?.require.types],
      ]) {
        expect(packed, `exports["${subpath}"].${condition}`).toContain(file?.slice(2));
      }
      expect(target?.import.default).toMatch(/\.js$/);
      expect(target?.import.types).toMatch(/\.d\.ts$/);
      expect(target?.require.default).toMatch(/\.cjs$/);
      expect(target?.require.types).toMatch(/\.d\.cts$/);
    }
    expect(packed.filter((file) => !file.startsWith("dist/")).sort()).toEqual(["LICENSE", "README.md", "package.json"]);
    // Every relative import or require of a packed file (the shared chunks, the declaration
    // helpers) is packed too; a declaration file's "./x.js" is TypeScript's name for ./x.d.ts
    // (and "./x.cjs" for ./x.d.cts).
    for (const file of packed.filter((name) => /\.(c?js|d\.c?ts)$/.test(name))) {
      const text = readFileSync(join(installed, file), "utf8");
      for (const [, target = ""] of text.matchAll(/(?:from|import|require\()\s*["'](\.{1,2}\/[^"']+)["']/g)) {
        const path = relative(installed, resolve(dirname(join(installed, file)), target))
          .split("\\")
          .join("/");
        const declared = file.endsWith(".d.ts")
          ? path.replace(/\.js$/, ".d.ts")
          : file.endsWith(".d.cts")
            ? path.replace(/\.c?js$/, ".d.cts")
            : path;
        expect(packed, `${file} imports ${target}`).toContain(declared);
      }
    }
  });

  it("installs offline into an empty project, alone: it has no runtime dependencies", () => {
    expect(pkg.dependencies ?? {}).toEqual({});
    const modules = readdirSync(join(consumer, "node_modules")).filter((name) => !name.startsWith("."));
    expect(modules).toEqual([pkg.name.split("/")[0]]);
  });

  it("imports every subpath but those that import their peer in Node as ESM without any peer, with the exports of src/", async () => {
    const others = subpaths.filter((subpath) => !importsPeer.has(subpath));
    const script = `
      const keys = {};
      for (const [subpath, name] of ${JSON.stringify(others.map((subpath) => [subpath, specifier(subpath)]))}) {
        keys[subpath] = Object.keys(await import(name)).sort();
      }
      console.log(JSON.stringify(keys));`;
    const keys = JSON.parse(await node(script, consumer)) as Record<string, string[]>;
    for (const subpath of others) {
      expect(keys[subpath], specifier(subpath)).toEqual(await sourceKeys(subpath));
    }
  });

  it("requires every subpath but those that load a peer (./tauri, ./vue, ./react) from CommonJS without any peer, with the exports of src/ and one RpcError class", async () => {
    const others = subpaths.filter((subpath) => !importsPeer.has(subpath));
    const script = `
      const keys = {};
      for (const [subpath, name] of ${JSON.stringify(others.map((subpath) => [subpath, specifier(subpath)]))}) {
        keys[subpath] = Object.keys(require(name)).sort();
      }
      // One class across subpaths: an error the relay's client throws is the core's RpcError.
      const { RpcError } = require(${JSON.stringify(specifier("."))});
      const { createSidecarHost } = require(${JSON.stringify(specifier("./relay"))});
      const { createMemoryLinkPair } = require(${JSON.stringify(specifier("./memory"))});
      const [link] = createMemoryLinkPair();
      const host = createSidecarHost({ link });
      host.close();
      keys.shared = [String(typeof RpcError === "function")];
      console.log(JSON.stringify(keys));`;
    const keys = JSON.parse(await node(script, consumer, "commonjs")) as Record<string, string[]>;
    for (const subpath of others) {
      expect(keys[subpath], `require(${specifier(subpath)})`).toEqual(await sourceKeys(subpath));
    }
    expect(keys.shared).toEqual(["true"]);
  });

  it("imports ./tauri once the app has @tauri-apps/plugin-shell, and not before (a peer, not bundled)", async () => {
    const script = `console.log(Object.keys(await import(${JSON.stringify(specifier("./tauri"))})).join())`;
    await expect(node(script, consumer)).rejects.toThrow(/@tauri-apps\/plugin-shell/);
    provide("@tauri-apps/plugin-shell");
    provide("@tauri-apps/api");
    expect((await node(script, consumer)).trim()).toBe(Object.keys(await import("../../src/tauri.js")).join());
    const required = `console.log(Object.keys(require(${JSON.stringify(specifier("./tauri"))})).join())`;
    expect((await node(required, consumer, "commonjs")).trim()).toBe(
      Object.keys(await import("../../src/tauri.js")).join(),
    );
  });

  it("imports ./vue and ./react once the app has vue and react, and not before (peers, not bundled)", async () => {
    for (const [subpath, peer] of [
      ["./vue", "vue"],
      ["./react", "react"],
    ] as const) {
      const script = `console.log(Object.keys(await import(${JSON.stringify(specifier(subpath))})).sort().join())`;
      await expect(node(script, consumer), subpath).rejects.toThrow(new RegExp(`'${peer}'`));
      provide(peer);
      const source = await import(/* @vite-ignore */ new URL(`../../src/${subpath.slice(2)}.ts`, import.meta.url).href);
      expect((await node(script, consumer)).trim()).toBe(Object.keys(source).sort().join());
    }
  });

  it("type-checks a consumer of every subpath with the bundler and node16 module resolutions, as ESM and as CommonJS", async () => {
    for (const peer of [
      "@types/node",
      "@tauri-apps/plugin-shell",
      "@tauri-apps/api",
      "pinia",
      "vue",
      "@types/react",
      "svelte",
      "valtio",
      "redux",
      "zustand",
    ]) {
      if (!existsSync(join(consumer, "node_modules", peer))) provide(peer);
    }
    writeFileSync(join(consumer, "consumer.ts"), consumerSource());
    // An Electron main process compiled by tsc to CommonJS: a "type": "commonjs" package
    // under module node16, where each import becomes a require and resolves to the .d.cts.
    const cjs = join(consumer, "cjs");
    mkdirSync(cjs, { recursive: true });
    writeFileSync(join(cjs, "package.json"), JSON.stringify({ name: "cjs-consumer", private: true, type: "commonjs" }));
    writeFileSync(join(cjs, "consumer.ts"), consumerSource("commonjs"));
    const compile = (resolution: "bundler" | "node16", cwd = consumer) =>
      run(
        process.execPath,
        [
          tsc,
          "--noEmit",
          "--strict",
          "--exactOptionalPropertyTypes",
          "--target",
          "es2022",
          "--lib",
          "es2022,dom",
          "--types",
          "node",
          "--skipLibCheck", // as app templates do; the probes below catch types that resolve to any
          "--module",
          resolution === "bundler" ? "esnext" : "node16",
          "--moduleResolution",
          resolution,
          "consumer.ts",
        ],
        { cwd },
      ).catch((error: { stdout?: string }) => {
        throw new Error(`tsc --moduleResolution ${resolution} in ${cwd}:\n${error.stdout ?? String(error)}`);
      });
    await Promise.all([compile("bundler"), compile("node16"), compile("node16", cjs)]);
  }, 120_000);

  it("fails npm pack on a checkout without node_modules with a message that says to run npm ci", async () => {
    const bare = join(work, "bare");
    cpSync(sdk, bare, {
      recursive: true,
      filter: (source) => {
        const top = relative(sdk, source).split(/[\\/]/)[0];
        return top !== "node_modules" && top !== "dist";
      },
    });
    const failure = await npm(["pack", "--pack-destination", work], bare).then(
      () => undefined,
      (error: { stderr?: string; code?: number }) => error,
    );
    expect(failure, "npm pack succeeded without the build tools").toBeDefined();
    expect(failure?.stderr).toContain("its build tools (tsup, typescript) are not installed");
    expect(failure?.stderr).toContain("Run `npm ci` in sdk-ts/");
    expect(failure?.stderr).not.toContain("tsup: not found");
  });
});

/**
 * Uses one export of each subpath; each @ts-expect-error fails the build if the types were
 * any. From CommonJS, pinia (an ESM-only package: its types are ESM) is reached through a
 * type-only import, as a CommonJS app that uses Pinia must.
 */
function consumerSource(format: "module" | "commonjs" = "module"): string {
  const probes: Record<string, string> = {
    ".": `import { connect, createRevisionSync, type Link, type RevisionSyncHandle } from "${specifier(".")}";
export async function core(link: Link): Promise<RevisionSyncHandle> {
  const client = await connect(link);
  // @ts-expect-error the topic is required
  createRevisionSync({ connection: client, applier: { apply() {} } });
  return createRevisionSync({ topic: "t", connection: client, applier: { apply({ revision }) { revision satisfies string; } } });
}`,
    "./node": `import { createNodeLink, type NodeLink } from "${specifier("./node")}";
export const node: NodeLink = createNodeLink("statesync-sidecar", { onStderr: (line: string) => void line });
// @ts-expect-error a path is a string
createNodeLink(42);`,
    "./tauri": `import { connectTauriWindow, createTauriLink, createTauriRelay, type TauriLink, type TauriRelay } from "${specifier("./tauri")}";
import type { StateSyncClient as WindowClient } from "${specifier(".")}";
export const tauri: Promise<TauriLink> = createTauriLink({ program: "binaries/statesync-sidecar" });
export const relay: Promise<TauriRelay> = createTauriRelay({ program: "binaries/statesync-sidecar", args: ["--store-file", "state.json"] });
export const tauriWindow: Promise<WindowClient> = connectTauriWindow();
// @ts-expect-error args are strings
createTauriLink({ args: [1] });
// @ts-expect-error getSnapshot answers a topic with a snapshot
createTauriRelay({ getSnapshot: 42 });`,
    "./message-port": `import { createMessagePortLink } from "${specifier("./message-port")}";
export const port = createMessagePortLink(new MessageChannel().port1);
// @ts-expect-error a port has postMessage
createMessagePortLink({});`,
    "./memory": `import { createMemoryLinkPair } from "${specifier("./memory")}";
import type { Link as CoreLink } from "${specifier(".")}";
export const pair: [CoreLink, CoreLink] = createMemoryLinkPair();
// @ts-expect-error takes no arguments
createMemoryLinkPair(1);`,
    "./relay": `import { createSidecarHost, type SidecarHost } from "${specifier("./relay")}";
import { createMemoryLinkPair as pairOf } from "${specifier("./memory")}";
export const host: SidecarHost = createSidecarHost({ link: pairOf()[0] });
// @ts-expect-error the link is required
createSidecarHost({});`,
    "./pinia":
      format === "module"
        ? `import { piniaApplier } from "${specifier("./pinia")}";
import { defineStore } from "pinia";
export const settings = piniaApplier(defineStore("settings", { state: () => ({ theme: "dark" }) })());
// @ts-expect-error a Pinia store
piniaApplier(42);`
        : `import { piniaApplier } from "${specifier("./pinia")}";
import type { Store } from "pinia" with { "resolution-mode": "import" };
declare const store: Store<"settings", { theme: string }>;
export const settings = piniaApplier(store);
// @ts-expect-error a Pinia store
piniaApplier(42);`,
    "./zustand": `import { zustandApplier } from "${specifier("./zustand")}";
import { createStore } from "zustand/vanilla";
export const zustand = zustandApplier(createStore(() => ({ count: 0 })), { pick: ["count"] });
// @ts-expect-error a store with getState and setState
zustandApplier({ setState() {} });`,
    "./vue": `import { vueApplier } from "${specifier("./vue")}";
import { reactive, ref } from "vue";
export const vueState = [vueApplier(reactive({ theme: "dark" }), { mode: "patch" }), vueApplier(ref({ n: 1 }))];
// @ts-expect-error pick names the state's keys
vueApplier(reactive({ theme: "dark" }), { pick: ["colour"] });`,
    "./svelte": `import { svelteApplier, svelteStateApplier } from "${specifier("./svelte")}";
import { writable } from "svelte/store";
export const svelte = [svelteApplier(writable({ theme: "dark" }), { omit: ["theme"] }), svelteStateApplier({ n: 1 })];
// @ts-expect-error pick or omit, not both
svelteApplier(writable({ theme: "dark" }), { pick: ["theme"], omit: ["theme"] });`,
    "./valtio": `import { valtioApplier } from "${specifier("./valtio")}";
import { proxy } from "valtio/vanilla";
export const valtio = valtioApplier(proxy({ theme: "dark" }));
// @ts-expect-error mode is "replace" or "patch"
valtioApplier(proxy({ theme: "dark" }), { mode: "merge" });`,
    "./react": `import { useRevisionSync } from "${specifier("./react")}";
import type { StateSyncClient } from "${specifier(".")}";
export function useTheme(connection: StateSyncClient): string {
  return useRevisionSync({ connection, topic: "settings", initialState: { theme: "dark" } }).theme;
}
// @ts-expect-error initialState is required
export const noInitial = (connection: StateSyncClient) => useRevisionSync({ connection, topic: "settings" });`,
    "./redux": `import { reduxApplier, revisionSyncReducer } from "${specifier("./redux")}";
import { legacy_createStore } from "redux";
const reduxStore = legacy_createStore(revisionSyncReducer("settings", (state: { theme: string } = { theme: "dark" }) => state));
export const redux = reduxApplier(reduxStore, "settings", { mode: "patch" });
// @ts-expect-error the topic is required
reduxApplier(reduxStore);`,
  };
  expect(Object.keys(probes).sort(), "a probe for every subpath export").toEqual([...subpaths].sort());
  const imports: string[] = [];
  const bodies: string[] = [];
  for (const probe of Object.values(probes)) {
    for (const line of probe.split("\n")) (line.startsWith("import ") ? imports : bodies).push(line);
  }
  return `${imports.join("\n")}\n\n${bodies.join("\n")}\n`;
}
