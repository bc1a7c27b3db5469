// Runs before `npm pack` builds dist/: without the devDependencies, the build would die on
// "sh: tsup: not found", which does not say that `npm ci` is the fix.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const missing = ["tsup", "typescript"].filter((name) => {
  try {
    require.resolve(`${name}/package.json`);
    return false;
  } catch {
    return true;
  }
});
if (missing.length > 0) {
  console.error(
    `@state-sync/sdk: npm pack builds dist/ first, and its build tools (${missing.join(", ")}) are not installed.\n` +
      "Run `npm ci` in sdk-ts/ (it installs the devDependencies), then `npm pack` again.",
  );
  process.exit(1);
}
