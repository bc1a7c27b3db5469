// Timers are the only host API the core needs. Every runtime it targets (browsers,
// webviews, Node, Electron, workers) has them, but they are not part of ECMAScript, so
// the core declares the two functions it uses instead of pulling in DOM or Node types.
interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const timers = globalThis as unknown as Timers;

/** Calls callback after ms; returns a function that cancels it. */
export function after(ms: number, callback: () => void): () => void {
  const handle = timers.setTimeout(callback, ms);
  return () => timers.clearTimeout(handle);
}

/** Resolves after ms. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    after(ms, resolve);
  });
}
