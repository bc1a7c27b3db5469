/** An `allow` entry of `shell:allow-spawn` in a capability (plugins/shell/src/scope_entry.rs). */
export interface ScopeEntry {
  name: string;
  sidecar?: boolean;
  cmd?: string;
  args?: boolean | (string | { validator: string; raw?: boolean })[] | undefined;
}

/**
 * ShellScope::_prepare in plugins/shell/src/scope.rs, for a webview's argument list: `true`
 * passes anything; no `args` (false) yields none; a list yields exactly its positions, a
 * fixed string as written, a validator's argument if it matches `^validator$` (or the raw
 * regex), a missing one is an error; anything beyond the list is not passed.
 */
export function prepareArgs(entry: ScopeEntry, args: string[]): string[] {
  if (entry.args === true) return args;
  if (entry.args === undefined || entry.args === false) return [];
  return entry.args.map((allowed, index) => {
    if (typeof allowed === "string") return allowed;
    const value = args[index];
    if (value === undefined) throw new Error(`argument ${index} missing`);
    const pattern = new RegExp(allowed.raw === true ? allowed.validator : `^${allowed.validator}$`);
    if (!pattern.test(value)) throw new Error(`argument ${index} failed validation ${pattern}`);
    return value;
  });
}
