"use client";
import { useQueryClient } from "@tanstack/react-query";
/**
 * The status stream: one `useVMData` subscription for the whole page (event stream, reconnect
 * with backoff, polling fallback), shared through a React context by `StatusStreamProvider` at
 * the root (`app/providers.tsx`). Widgets select what they show:
 *
 *   const pools = useStatusSelector((s) => s.pools);         // undefined before the first snapshot
 *   const { mode, isLoading, error } = useStatusConnection();
 *
 * The context holds a small store rather than the value itself, so a widget re-renders only when
 * what it selected changes: TanStack Query keeps unchanged parts of a new snapshot referentially
 * equal (structural sharing), so `s => s.pools` stays the same array while the pools do not move.
 *
 * The stream sends a `snapshot`, then per-entity `delta`s (`GET /api/events`): the provider
 * opens it through `statusStreamFactory` (`lib/statusStreamSource.ts`), which applies each delta
 * to the status it holds and writes the result into the query cache; a delta that does not
 * follow the held version makes it reconnect for a fresh snapshot. Reconnects, the polling
 * fallback and the connection state stay `useVMData`'s.
 */
import {
  createContext,
  type ReactNode,
  useContext,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
} from "react";
import { statusQueryOptions } from "@/lib/api/queries";
import type { StatusResponse } from "@/lib/api/types";
import { statusStreamFactory } from "@/lib/statusStreamSource";
import { type ConnectionMode, type UseVMDataOptions, useVMData, type VMData } from "./useVMData";

type Listener = () => void;

/** The latest `VMData`, readable synchronously and observable. */
export interface StatusStore {
  get(): VMData;
  subscribe(listener: Listener): () => void;
}

interface WritableStatusStore extends StatusStore {
  set(value: VMData): void;
}

function createStatusStore(initial: VMData): WritableStatusStore {
  let value = initial;
  const listeners = new Set<Listener>();
  return {
    get: () => value,
    set(next) {
      if (next === value) return;
      value = next;
      for (const listener of listeners) listener();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}

const StatusStreamContext = createContext<StatusStore | null>(null);

// Layout effect in the browser (widgets update in the same frame), plain effect on the server.
const useIsomorphicLayoutEffect = typeof window === "undefined" ? useEffect : useLayoutEffect;

export interface StatusStreamProviderProps extends UseVMDataOptions {
  children: ReactNode;
}

/** Opens the one status subscription of the page and shares it with every widget below. */
export function StatusStreamProvider({ children, ...options }: StatusStreamProviderProps) {
  const createEventSource = useDeltaStream(options.createEventSource);
  const { data, error, isLoading, mode, lastUpdatedAt } = useVMData({
    ...options,
    createEventSource,
  });
  const value = useMemo<VMData>(
    () => ({ data, error, isLoading, mode, lastUpdatedAt }),
    [data, error, isLoading, mode, lastUpdatedAt],
  );
  const [store] = useState(() => createStatusStore(value));
  useIsomorphicLayoutEffect(() => {
    store.set(value);
  }, [store, value]);
  return <StatusStreamContext.Provider value={store}>{children}</StatusStreamContext.Provider>;
}

/**
 * The event-source factory `useVMData` opens the stream with: deltas applied, statuses written
 * into the query cache. Undefined where there is no EventSource at all (polling only).
 */
function useDeltaStream(
  create: ((url: string) => EventSource) | undefined,
): ((url: string) => EventSource) | undefined {
  const queryClient = useQueryClient();
  const createRef = useRef(create);
  createRef.current = create;
  const [factory] = useState(() =>
    statusStreamFactory({
      create: (url) => (createRef.current ? createRef.current(url) : new EventSource(url)),
      onStatus: (status) => {
        const { queryKey } = statusQueryOptions();
        // A fetch still in flight would overwrite this fresher status with an older one.
        void queryClient.cancelQueries({ queryKey, exact: true });
        queryClient.setQueryData(queryKey, status);
        return queryClient.getQueryData(queryKey) ?? status;
      },
    }),
  );
  return create || typeof EventSource !== "undefined" ? factory : undefined;
}

function useStatusStore(): StatusStore {
  const store = useContext(StatusStreamContext);
  if (!store) {
    throw new Error("useStatusStream: wrap the tree in <StatusStreamProvider> (app/providers.tsx)");
  }
  return store;
}

export type EqualityFn<T> = (a: T, b: T) => boolean;

/** Equal when both are the same or hold the same values under the same keys (one level deep). */
export function shallowEqual<T>(a: T, b: T): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  const keysA = Object.keys(a);
  if (keysA.length !== Object.keys(b).length) return false;
  return keysA.every(
    (key) => Object.hasOwn(b, key) && Object.is(Reflect.get(a, key), Reflect.get(b, key)),
  );
}

/**
 * Selects from the stream's whole state (`VMData`); re-renders when the selection changes by
 * `isEqual` (default `Object.is`).
 */
export function useStatusStream<T>(
  selector: (stream: VMData) => T,
  isEqual: EqualityFn<T> = Object.is,
): T {
  const store = useStatusStore();
  const last = useRef<{ source: VMData; selector: (stream: VMData) => T; value: T } | null>(null);
  const getSnapshot = (): T => {
    const source = store.get();
    const cached = last.current;
    if (cached && cached.source === source && cached.selector === selector) return cached.value;
    const next = selector(source);
    // Keep the previous value when equal: same reference, no re-render.
    const value = cached && isEqual(cached.value, next) ? cached.value : next;
    last.current = { source, selector, value };
    return value;
  };
  return useSyncExternalStore(store.subscribe, getSnapshot, getSnapshot);
}

/**
 * Selects from the latest status snapshot: `undefined` until the first one arrives (then the last
 * one received is kept, also while the API is unreachable).
 */
export function useStatusSelector<T>(
  selector: (status: StatusResponse) => T,
  isEqual: EqualityFn<T> = Object.is,
): T | undefined {
  return useStatusStream(
    (stream) => (stream.data === undefined ? undefined : selector(stream.data)),
    (a, b) => a === b || (a !== undefined && b !== undefined && isEqual(a, b)),
  );
}

export interface StatusConnection {
  mode: ConnectionMode;
  /** True until the first snapshot (or the first failure). */
  isLoading: boolean;
  /** Why the last fetch failed (null while the stream is live or the last fetch worked). */
  error: Error | null;
  /** Epoch milliseconds of the last fresh snapshot, null before the first. */
  lastUpdatedAt: number | null;
  /** Whether a snapshot has arrived yet. */
  hasData: boolean;
}

const selectConnection = (stream: VMData): StatusConnection => ({
  mode: stream.mode,
  isLoading: stream.isLoading,
  error: stream.error,
  lastUpdatedAt: stream.lastUpdatedAt,
  hasData: stream.data !== undefined,
});

/** The stream's connection state, without the snapshot (does not re-render on new data). */
export function useStatusConnection(): StatusConnection {
  return useStatusStream(selectConnection, shallowEqual);
}
