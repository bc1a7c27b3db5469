// forge.config.ts (Electron Forge): the sidecars of the OS being packaged, both architectures
const sidecars: Record<string, string[]> = {
  darwin: ["statesync-sidecar-aarch64-apple-darwin", "statesync-sidecar-x86_64-apple-darwin"],
  linux: ["statesync-sidecar-aarch64-unknown-linux-gnu", "statesync-sidecar-x86_64-unknown-linux-gnu"],
  win32: ["statesync-sidecar-aarch64-pc-windows-msvc.exe", "statesync-sidecar-x86_64-pc-windows-msvc.exe"],
};

export default {
  packagerConfig: {
    asar: true,
    // Copied into the resources folder, which the packaged app finds at process.resourcesPath.
    extraResource: (sidecars[process.platform] ?? []).map((file) => `binaries/${file}`),
  },
};
