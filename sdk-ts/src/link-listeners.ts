/**
 * The listeners of one link: message handlers and close handlers, each registration
 * returning its own disposer. Every link delivers through it, so a handler added or
 * removed while a message is being delivered behaves the same on every transport.
 */
export class LinkListeners {
  readonly #message = new Set<(message: unknown) => void>();
  readonly #close = new Set<(error?: Error) => void>();

  /** Registers a message handler; the same function registered twice runs twice. */
  readonly onMessage = (handler: (message: unknown) => void): (() => void) => {
    const entry = (message: unknown) => handler(message);
    this.#message.add(entry);
    return () => {
      this.#message.delete(entry);
    };
  };

  /** Registers a close handler, told once with the error that closed the link, if any. */
  readonly onClose = (handler: (error?: Error) => void): (() => void) => {
    const entry = (error?: Error) => handler(error);
    this.#close.add(entry);
    return () => {
      this.#close.delete(entry);
    };
  };

  /** Hands message to every handler registered now. */
  deliver(message: unknown): void {
    for (const handler of [...this.#message]) {
      handler(message);
    }
  }

  /** Drops the message handlers, then tells each close handler once. */
  closed(error?: Error): void {
    this.#message.clear();
    const handlers = [...this.#close];
    this.#close.clear();
    for (const handler of handlers) {
      handler(error);
    }
  }
}
