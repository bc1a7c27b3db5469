/** A promise the test resolves by hand: a gate that a fake holds closed until told. */
export interface Gate<T = void> {
  promise: Promise<T>;
  open(value: T): void;
  fail(error: unknown): void;
}

export function gate<T = void>(): Gate<T> {
  let open!: (value: T) => void;
  let fail!: (error: unknown) => void;
  const promise = new Promise<T>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

/** Rejects with a message naming what was awaited if it takes longer than ms. */
export function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits until check() is true, re-checking after each macrotask; bounded. */
export async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A subscriber whose events the test emits by hand. */
export function manualSubscriber() {
  let handler: (event: unknown) => void = () => {};
  return {
    emit: (event: unknown) => handler(event),
    subscriber: {
      subscribe: async (deliver: (event: unknown) => void) => {
        handler = deliver;
        return () => {
          handler = () => {};
        };
      },
    },
  };
}
