import { useEffect, useRef, useState, useSyncExternalStore } from "react";
import { StoppedError } from "../errors.js";
import { createRevisionSync, type RevisionSyncOptions } from "../revision-sync.js";
import { type ApplyOptions, checkApplyOptions, foldValue } from "./options.js";

type WithoutApplier<O> = O extends unknown ? Omit<O, "applier"> : never;

/**
 * createRevisionSync's options less the applier (the hook is the applier), plus the
 * ApplyOptions, the state to render before the first snapshot, and where a failed start
 * goes (by default it is thrown, an unhandled rejection).
 */
export type UseRevisionSyncOptions<T> = WithoutApplier<RevisionSyncOptions<unknown>> &
  ApplyOptions<T> & {
    initialState: T;
    onStartError?: (error: unknown) => void;
  };

/** The hook's external store: one per mounted component, kept across StrictMode's rehearsal. */
interface Cell<T> {
  value: T;
  readonly listeners: Set<() => void>;
  readonly subscribe: (listener: () => void) => () => void;
  readonly read: () => T;
}

function createCell<T>(initial: T): Cell<T> {
  const cell: Cell<T> = {
    value: initial,
    listeners: new Set(),
    subscribe(listener) {
      cell.listeners.add(listener);
      return () => cell.listeners.delete(listener);
    },
    read: () => cell.value,
  };
  return cell;
}

/**
 * The topic's state, as a React state: the component renders `initialState`, then every
 * applied snapshot, folded by the ApplyOptions. One sync runs per mounted component and
 * `connection` + `topic`; changing either starts a new one, unmount stops it. Under
 * StrictMode the first sync is stopped before the second starts, and the stopped one can
 * never write: each effect run owns its own handle, whatever `start()` does when called twice.
 * Other options are read when a sync starts.
 */
export function useRevisionSync<T>(options: UseRevisionSyncOptions<T>): T {
  const { connection, topic } = options;
  const [cell] = useState(() => createCell(options.initialState));
  const latest = useRef(options);
  useEffect(() => {
    latest.current = options;
  });
  useEffect(() => {
    const { initialState: _initial, onStartError, mode, pick, omit, ...syncOptions } = latest.current;
    const fold = checkApplyOptions({ mode, pick, omit }, "useRevisionSync");
    let live = true;
    const sync = createRevisionSync({
      ...(syncOptions as RevisionSyncOptions<unknown>),
      connection,
      topic,
      applier: {
        apply({ revision, data, deleted }) {
          if (!live) return; // stop() already drops these; this guards the state, not the wire
          cell.value = foldValue(cell.value, data, fold, revision, deleted === true);
          for (const listener of cell.listeners) listener();
        },
      },
    });
    sync.start().catch((error: unknown) => {
      if (error instanceof StoppedError) return; // unmounted (or StrictMode's rehearsal) while starting
      if (onStartError === undefined) throw error;
      onStartError(error);
    });
    return () => {
      live = false;
      sync.stop();
    };
  }, [cell, connection, topic]);
  return useSyncExternalStore(cell.subscribe, cell.read, cell.read);
}
