// A structural stand-in for the part of Electron's types that electron-*.ts use, so that the
// guide's snippets compile without the electron package (whose install downloads Electron).
// Each signature is copied from Electron's API docs (api/app.md, browser-window.md,
// web-contents.md, message-channel-main.md, message-port-main.md, ipc-renderer.md,
// structures/ipc-renderer-event.md, process.md).

declare module "electron" {
  interface MessagePortMain extends NodeJS.EventEmitter {
    postMessage(message: unknown, transfer?: MessagePortMain[]): void;
    start(): void;
    close(): void;
  }
  class MessageChannelMain {
    readonly port1: MessagePortMain;
    readonly port2: MessagePortMain;
  }
  interface WebContents extends NodeJS.EventEmitter {
    postMessage(channel: string, message: unknown, transfer?: MessagePortMain[]): void;
    on(event: "did-finish-load", listener: () => void): this;
  }
  class BrowserWindow {
    constructor(options?: { webPreferences?: { preload?: string } });
    readonly webContents: WebContents;
    on(event: "closed", listener: () => void): this;
    loadFile(filePath: string): Promise<void>;
  }
  const app: {
    readonly isPackaged: boolean;
    getAppPath(): string;
    getPath(name: "userData"): string;
    whenReady(): Promise<void>;
    on(event: "before-quit", listener: () => void): unknown;
  };
  interface IpcRendererEvent {
    readonly ports: MessagePort[];
  }
  const ipcRenderer: {
    on(channel: string, listener: (event: IpcRendererEvent, ...args: unknown[]) => void): unknown;
  };
}

declare namespace NodeJS {
  interface Process {
    /** Electron: the path to the resources folder. */
    readonly resourcesPath: string;
  }
}
