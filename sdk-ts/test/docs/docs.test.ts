import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { prepareArgs, type ScopeEntry } from "../helpers/shell-scope.js";

// The guides quote the files of this folder byte for byte (tsc and biome check them, the
// other tests here run them); their JSON parses and agrees with the TypeScript, with the
// shell plugin's scope rules and with the binaries `task dist` builds.

const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");
const guides = {
  "docs/tauri.md": read("../../../docs/tauri.md"),
  "docs/electron.md": read("../../../docs/electron.md"),
};
const snippets = Object.fromEntries(
  readdirSync(new URL(".", import.meta.url))
    .filter((name) => name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts"))
    .map((name) => [name, read(`./${name}`)]),
);

function blocks(markdown: string, language: string): string[] {
  return [...markdown.matchAll(new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\`$`, "gm"))].map((m) => m[1] ?? "");
}

/** `task dist`'s targets, read from internal/dist/main.go: {goos, goarch, triple, file}. */
const targets = [...read("../../../internal/dist/main.go").matchAll(/\{"(\w+)", "(\w+)", "([\w-]+)"\}/g)].map(
  ([, goos = "", goarch = "", triple = ""]) => ({
    goos,
    goarch,
    triple,
    file: `statesync-sidecar-${triple}${goos === "windows" ? ".exe" : ""}`,
  }),
);
const nodePlatform = (goos: string) => ({ windows: "win32" })[goos] ?? goos;
const nodeArch = (goarch: string) => ({ amd64: "x64" })[goarch] ?? goarch;

describe("the integration guides", () => {
  it("quote every snippet file verbatim, and show no TypeScript that is not one", () => {
    const quoted = Object.values(guides).flatMap((guide) => blocks(guide, "ts"));
    for (const [name, source] of Object.entries(snippets)) {
      expect(quoted, `test/docs/${name} is quoted in a guide`).toContain(source);
    }
    for (const block of quoted) {
      expect(Object.values(snippets), `a TypeScript block that is not a test/docs file:\n${block}`).toContain(block);
    }
  });

  it("show JSON that parses", () => {
    for (const [guide, markdown] of Object.entries(guides)) {
      for (const block of blocks(markdown, "json")) {
        expect(() => JSON.parse(block), `${guide}:\n${block}`).not.toThrow();
      }
    }
  });

  it("know the six binaries task dist builds", () => {
    expect(targets).toHaveLength(6);
    for (const { triple } of targets) expect(guides["docs/tauri.md"]).toContain(`\`${triple}\``);
  });
});

describe("docs/tauri.md and the README's Tauri quick start", () => {
  const markdown = guides["docs/tauri.md"];
  const readme = read("../../README.md");
  const quickStart = /^## Quick start: Tauri v2\n[\s\S]*?(?=^## )/m.exec(readme)?.[0] ?? "";
  const jsonFiles = Object.fromEntries(
    readdirSync(new URL(".", import.meta.url))
      .filter((name) => name.startsWith("tauri") && name.endsWith(".json"))
      .map((name) => [name, read(`./${name}`)]),
  );
  const json = <T>(name: string) => JSON.parse(jsonFiles[name] ?? "null") as T;
  const config = json<{
    app: { windows: { label: string; visible?: boolean }[] };
    bundle: { externalBin: string[] };
  }>("tauri.conf.json");
  const owner = json<Capability>("tauri-capability-owner.json");
  const windows = json<Capability>("tauri-capability-windows.json");
  const link = json<Capability>("tauri-capability-link.json");
  const externalBin = config.bundle.externalBin[0] ?? "";
  const spawnScope = (capability: Capability): ScopeEntry[] => {
    const spawn = capability.permissions.find((p) => typeof p === "object" && p.identifier === "shell:allow-spawn");
    return typeof spawn === "object" ? spawn.allow : [];
  };

  it("quote every JSON file verbatim and show no JSON that is not one", () => {
    const quoted = blocks(markdown, "json");
    for (const [name, source] of Object.entries(jsonFiles)) {
      expect(quoted, `test/docs/${name} is quoted in docs/tauri.md`).toContain(source);
    }
    for (const block of quoted) {
      expect(Object.values(jsonFiles), `a JSON block that is not a test/docs file:\n${block}`).toContain(block);
    }
  });

  it("the README's quick start quotes the guide's files: the same owner, window and capabilities", () => {
    expect(quickStart).not.toBe("");
    const ts = blocks(quickStart, "ts");
    expect(ts).toEqual([snippets["tauri-owner.ts"], snippets["tauri-window.ts"]]);
    expect(blocks(quickStart, "json")).toEqual([
      jsonFiles["tauri-capability-owner.json"],
      jsonFiles["tauri-capability-windows.json"],
    ]);
  });

  it("declares the owner as a hidden window, and gives the shell permissions to it alone", () => {
    const hidden = config.app.windows.filter((w) => w.visible === false);
    expect(hidden.map((w) => w.label)).toEqual(["state-sync"]);
    expect(owner.windows).toEqual(["state-sync"]);
    expect(link.windows).toEqual(["main"]);
    for (const capability of [windows]) {
      expect(capability.permissions.some((p) => typeof p === "string" && p.startsWith("shell:"))).toBe(false);
    }
    // The rust snippet quits with the main window: the hidden one would keep the app alive.
    expect(blocks(markdown, "rust").join("\n")).toContain('window.label() == "main"');
  });

  it("lets every window use the events the relay speaks over", () => {
    expect(windows.windows).toEqual(["*"]);
    expect(windows.permissions).toEqual(["core:event:default"]);
  });

  it("names one externalBin, the one the webviews spawn and the capabilities allow", () => {
    expect(config.bundle.externalBin).toEqual(["binaries/statesync-sidecar"]);
    for (const name of ["tauri-webview.ts", "tauri-owner.ts"]) {
      expect(/program: "([^"]+)"/.exec(snippets[name] ?? "")?.[1], name).toBe(externalBin);
    }
    for (const capability of [owner, link]) {
      expect(spawnScope(capability).map((entry) => entry.name)).toEqual([externalBin]);
    }
  });

  it("has the Rust side spawn the sidecar by its file name", () => {
    const rust = blocks(markdown, "rust").join("\n");
    const name = externalBin.split("/").pop();
    expect([...rust.matchAll(/\.sidecar\("([^"]+)"\)/g)].map((m) => m[1])).toEqual([name]);
  });

  it("grants what the SDK calls: spawn (scoped), stdin-write, kill, the path API; with valid scopes", () => {
    expect(owner.permissions).toEqual(
      expect.arrayContaining(["shell:allow-stdin-write", "shell:allow-kill", "core:path:default"]),
    );
    expect(link.permissions).toEqual(
      expect.arrayContaining(["shell:allow-stdin-write", "shell:allow-kill", "core:default"]),
    );
    for (const capability of [owner, windows, link]) {
      expect(capability.identifier).toBeTruthy();
      for (const permission of capability.permissions) {
        if (typeof permission === "object") {
          for (const entry of permission.allow) checkScopeEntry(entry);
        }
      }
    }
    expect(new Set([owner.identifier, windows.identifier, link.identifier]).size).toBe(3);
  });

  it("lets the webviews' --store-file argument through, on every desktop OS's app data path", () => {
    expect(snippets["tauri-webview.ts"]).toContain('args: ["--store-file", storeFile]');
    expect(snippets["tauri-owner.ts"]).toContain(
      'args: ["--store-file", await join(await appDataDir(), "state.json")]',
    );
    expect(spawnScope(owner)).toEqual(spawnScope(link)); // the two set-ups agree
    const entry = spawnScope(owner)[0];
    if (entry === undefined) throw new Error("no shell:allow-spawn scope");
    for (const storeFile of [
      "/home/ada/.local/share/com.example.app/state.json",
      "/Users/ada/Library/Application Support/com.example.app/state.json",
      "C:\\Users\\Ada Lovelace\\AppData\\Roaming\\com.example.app\\state.json",
    ]) {
      expect(prepareArgs(entry, ["--store-file", storeFile])).toEqual(["--store-file", storeFile]);
    }
    expect(() => prepareArgs(entry, ["--store-file", "/etc/passwd"])).toThrow(/validation/);
    expect(() => prepareArgs(entry, [])).toThrow(/missing/); // what createTauriLink() with no args would get
    // What the plugin does with arguments the scope does not list: drops them, no error.
    expect(prepareArgs(entry, ["--store-file", "/x/state.json", "--trace"])).toEqual(["--store-file", "/x/state.json"]);
    expect(prepareArgs({ ...entry, args: undefined }, ["--trace"])).toEqual([]);
  });
});

interface Capability {
  identifier: string;
  windows: string[];
  permissions: (string | { identifier: string; allow: ScopeEntry[] })[];
}

describe("docs/electron.md", () => {
  it("main.ts maps every task dist target to Node's platform-arch, and nothing else", () => {
    const source = snippets["electron-main.ts"] ?? "";
    const table = /const triples: Record<string, string> = (\{[\s\S]*?\});/.exec(source)?.[1] ?? "";
    const triples = JSON.parse(table.replace(/,\s*\}$/, "}")) as Record<string, string>;
    expect(triples).toEqual(
      Object.fromEntries(targets.map((t) => [`${nodePlatform(t.goos)}-${nodeArch(t.goarch)}`, t.triple])),
    );
  });

  it("packages exactly each OS's binaries, with electron-builder and with Forge", () => {
    const builder = blocks(guides["docs/electron.md"], "json")
      .map((block) => JSON.parse(block) as { build?: Record<string, { extraResources: FileSet[] }> })
      .find((value) => value.build !== undefined)?.build;
    const names = { mac: "darwin", linux: "linux", win: "windows" } as const;
    const forge = /const sidecars: Record<string, string\[\]> = (\{[\s\S]*?\});/.exec(
      snippets["forge-config.ts"] ?? "",
    )?.[1];
    const forgeFiles = JSON.parse(
      (forge ?? "")
        .replace(/(\w+):/g, '"$1":')
        .replace(/,\s*\]/g, "]")
        .replace(/,\s*\}$/, "}"),
    ) as Record<string, string[]>;
    for (const [key, goos] of Object.entries(names)) {
      const expected = targets.filter((t) => t.goos === goos).map((t) => t.file);
      const sets = builder?.[key]?.extraResources ?? [];
      expect(sets, `build.${key}`).toHaveLength(1);
      const [set] = sets;
      expect(set?.from).toBe("binaries");
      expect(set?.to).toBe(".");
      const matched = targets
        .map((t) => t.file)
        .filter((file) => (set?.filter ?? []).some((glob) => globMatch(glob, file)));
      expect(matched.sort(), `build.${key} filter`).toEqual(expected.sort());
      expect(forgeFiles[nodePlatform(goos)]?.slice().sort(), `forge ${goos}`).toEqual(expected.sort());
    }
  });
});

interface FileSet {
  from: string;
  to: string;
  filter: string[];
}

/** The shapes plugins/shell/src/scope_entry.rs accepts (its `args` items deny unknown fields). */
function checkScopeEntry(entry: ScopeEntry) {
  expect(
    Object.keys(entry).every((key) => ["name", "cmd", "sidecar", "args"].includes(key)),
    "scope entry keys",
  ).toBe(true);
  expect(typeof entry.name).toBe("string");
  expect(entry.sidecar === true || typeof entry.cmd === "string", "a sidecar, or a cmd").toBe(true);
  if (entry.args === undefined || typeof entry.args === "boolean") return;
  for (const arg of entry.args) {
    if (typeof arg === "string") continue;
    expect(Object.keys(arg).every((key) => key === "validator" || key === "raw")).toBe(true);
    expect(() => new RegExp(arg.validator)).not.toThrow();
  }
}

/** electron-builder's filter globs as used here: `*` within a file name. */
function globMatch(glob: string, name: string): boolean {
  const pattern = glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*");
  return new RegExp(`^${pattern}$`).test(name);
}
