import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

// What a new user reads first: the repository's README (first run, versions, install) and
// the package's README (install, links that work on npm, the Electron quick start quoted
// from the files test/docs/electron.test.ts runs against the real binary).

const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");
const root = read("../../../README.md");
const sdk = read("../../README.md");
/** Prose as one line: a sentence may wrap anywhere. */
const flat = (markdown: string) => markdown.replace(/\s+/g, " ");
const pkg = JSON.parse(read("../../package.json")) as { engines: { node: string }; repository: { url: string } };
const goVersion = /^go (\d+\.\d+)/m.exec(read("../../../go.mod"))?.[1] ?? "";
/** https://github.com/owner/name, from package.json's git+https://github.com/owner/name.git. */
const repository = pkg.repository.url.replace(/^git\+/, "").replace(/\.git$/, "");

function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start === -1) throw new Error(`no "## ${heading}" section`);
  const end = markdown.indexOf("\n## ", start + 1);
  return markdown.slice(start, end === -1 ? undefined : end);
}

function blocks(markdown: string, language: string): string[] {
  return [...markdown.matchAll(new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\`$`, "gm"))].map((m) => m[1] ?? "");
}

describe("README.md", () => {
  it("starts with the demo, which needs only Go, then the test command, saying it builds its tools first", () => {
    const [first] = blocks(section(root, "Try it (a fresh machine with Go and Node is enough)"), "sh");
    const commands = (first ?? "").split("\n").filter((line) => line.trim() !== "");
    expect(commands[0]).toMatch(/^go run \.\/examples\/demo\s/);
    expect(commands[1]).toMatch(/^go tool -modfile=tools\/go\.mod task test\s/);
    expect(flat(root)).toMatch(/The first `go tool … task` builds go-task/);
  });

  it("states the Go and Node versions the repository needs", () => {
    expect(flat(root)).toContain(`Go ${goVersion} or later`);
    expect(pkg.engines.node).toBe(">=20");
    expect(flat(root)).toContain("Node.js 20 or later");
    expect(flat(sdk)).toContain("Node.js 20 or later");
    expect(flat(sdk)).toContain(`Go ${goVersion} or later`);
  });

  it("installs the SDK from the tarball npm pack builds, never from a registry name that is not published", () => {
    for (const [name, markdown] of [
      ["README.md", root],
      ["sdk-ts/README.md", sdk],
      ["docs/electron.md", read("../../../docs/electron.md")],
    ] as const) {
      expect(markdown, name).not.toMatch(/npm install @state-sync\/sdk/);
      expect(markdown, name).toContain("npm install ./state-sync-sdk-<version>.tgz");
    }
    expect(sdk).toContain("npm ci        # the build tools");
    expect(sdk).toContain("npm pack      # builds dist/");
  });
});

describe("sdk-ts/README.md", () => {
  it("links only to absolute URLs, the repository's under package.json's repository, so they work on npm", () => {
    const links = [...sdk.matchAll(/\]\(([^)]+)\)/g)].map((m) => m[1] ?? "");
    expect(links.length).toBeGreaterThan(3);
    for (const link of links) {
      expect(link, "a link that works on npmjs.com").toMatch(/^https:\/\//);
      if (link.includes("github.com/"))
        expect(link.startsWith(`${repository}/`) || link.startsWith(`${repository}#`)).toBe(true);
    }
    expect(repository).toMatch(/^https:\/\/github\.com\/[\w.-]+\/[\w.-]+$/);
  });

  it("quotes the Electron guide's files byte for byte as its Electron quick start", () => {
    const quoted = blocks(section(sdk, "Quick start: Electron"), "ts");
    const files = readdirSync(new URL(".", import.meta.url))
      .filter((name) => /^electron-.*\.ts$/.test(name) && !name.endsWith(".test.ts") && !name.endsWith(".d.ts"))
      .sort();
    expect(files).toEqual(["electron-main.ts", "electron-preload.ts", "electron-renderer.ts"]);
    expect(quoted).toEqual(files.map((name) => read(`./${name}`)));
  });
});
