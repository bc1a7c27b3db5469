// What each subpath export costs an app: esbuild bundles the subpath's source with all it
// pulls from the core, minified, peers left external (the app has them anyway), and gzips
// it. "Over the core" is what the subpath adds to an app that already imports
// @state-sync/sdk: the bundle of both, less the core's. Run: node scripts/bundle-size.mjs
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { build, version } from "esbuild";

const root = new URL("../", import.meta.url);
const pkg = JSON.parse(readFileSync(new URL("package.json", root), "utf8"));
const peers = Object.keys(pkg.peerDependencies ?? {});
const source = (subpath) => new URL(`src/${subpath === "." ? "index" : subpath.slice(2)}.ts`, root).pathname;

/** Minified and gzipped sizes, in bytes, of a bundle exporting everything of these subpaths. */
async function measure(subpaths) {
  const result = await build({
    stdin: {
      contents: subpaths.map((subpath) => `export * from ${JSON.stringify(source(subpath))};`).join("\n"),
      resolveDir: root.pathname,
      loader: "ts",
    },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    external: [...peers.flatMap((peer) => [peer, `${peer}/*`]), "node:*"],
    write: false,
    logLevel: "error",
  });
  const code = result.outputFiles[0].contents;
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

const core = await measure(["."]);
console.log("| import | minified | minified + gzip | over the core, gzip |\n| --- | ---: | ---: | ---: |");
for (const subpath of Object.keys(pkg.exports)) {
  const alone = await measure([subpath]);
  const over = subpath === "." ? "" : `${(await measure([".", subpath])).gzipped - core.gzipped} B`;
  const name = subpath === "." ? pkg.name : `${pkg.name}${subpath.slice(1)}`;
  console.log(`| \`${name}\` | ${alone.minified} B | ${alone.gzipped} B | ${over} |`);
}
console.log(`\nesbuild ${version}, node ${process.version}`);
