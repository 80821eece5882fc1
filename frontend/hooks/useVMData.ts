"use client";
/**
 * Live system status for the whole dashboard.
 *
 * Subscribes to `GET /api/events` (server-sent events): a `snapshot` (the full `StatusResponse`)
 * then `delta`s, applied by `lib/statusStreamSource.ts`; the result goes into TanStack Query's
 * cache under the status key. When the
 * stream drops, it reconnects with exponential backoff (capped) and, until it is back, polls
 * `GET /api/status` every few seconds. It runs once per page, inside `StatusStreamProvider`
 * (`hooks/useStatusStream.tsx`); widgets read it with `useStatusSelector` / `useStatusConnection`.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, useSyncExternalStore } from "react";
import { eventsUrl, isUnauthorized } from "@/lib/api/client";
import { queryKeys, snapshotDependentKeys, statusQueryOptions } from "@/lib/api/queries";
import { getToken, subscribe } from "@/lib/api/token";
import type { StatusResponse } from "@/lib/api/types";

export type ConnectionMode = "live" | "polling" | "offline";

export interface UseVMDataOptions {
  /** Poll period while the event stream is down. */
  pollIntervalMs?: number;
  /** First reconnect delay; doubles on each failed attempt. */
  initialBackoffMs?: number;
  /** Upper bound of the reconnect delay. */
  maxBackoffMs?: number;
  /** For tests: how to open the stream. Defaults to `new EventSource(url)`. */
  createEventSource?: (url: string) => EventSource;
}

export interface VMData {
  data: StatusResponse | undefined;
  error: Error | null;
  isLoading: boolean;
  mode: ConnectionMode;
  /** Epoch milliseconds of the last fresh snapshot (stream or poll), null before the first. */
  lastUpdatedAt: number | null;
}

export const DEFAULT_POLL_INTERVAL_MS = 3_000;
export const DEFAULT_INITIAL_BACKOFF_MS = 1_000;
export const DEFAULT_MAX_BACKOFF_MS = 10_000;

export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  return Math.min(initialMs * 2 ** attempt, maxMs);
}

/**
 * Whether a pushed event has the shape of a status snapshot (the stream is not described by the
 * OpenAPI document, so its payload is checked here instead of cast).
 */
export function isStatusResponse(value: unknown): value is StatusResponse {
  if (!value || typeof value !== "object") return false;
  const lists = ["vms", "queued_jobs", "running_jobs", "unmatched_jobs", "pools"] as const;
  return (
    "snapshot_version" in value &&
    typeof value.snapshot_version === "number" &&
    lists.every((key) => Array.isArray(Reflect.get(value, key)))
  );
}

function parseStatus(raw: unknown): StatusResponse | null {
  if (typeof raw !== "string") return null;
  try {
    const value: unknown = JSON.parse(raw);
    if (isStatusResponse(value)) return value;
  } catch {
    // A malformed event is ignored; the next one or a poll repairs the cache.
  }
  return null;
}

/** What the VM and job views depend on: changes when a VM or a job changes state. */
export function snapshotSignature(status: StatusResponse): string {
  const vms = status.vms.map((vm) => `${vm.vm_id}:${vm.status}:${vm.job_id ?? ""}`).join(",");
  const jobs = [...status.queued_jobs, ...status.running_jobs, ...status.unmatched_jobs]
    .map(
      (job) => `${job.id}:${job.status}:${job.vm_id ?? ""}:${Object.values(job.stages).join("/")}`,
    )
    .join(",");
  return `${vms}|${jobs}|${status.completed_jobs_total}`;
}

function defaultEventSource(url: string): EventSource | null {
  return typeof EventSource === "undefined" ? null : new EventSource(url);
}

export function useVMData(options: UseVMDataOptions = {}): VMData {
  const {
    pollIntervalMs = DEFAULT_POLL_INTERVAL_MS,
    initialBackoffMs = DEFAULT_INITIAL_BACKOFF_MS,
    maxBackoffMs = DEFAULT_MAX_BACKOFF_MS,
    createEventSource,
  } = options;
  const queryClient = useQueryClient();
  const token = useSyncExternalStore(subscribe, getToken, () => null);
  const [streamUp, setStreamUpState] = useState(false);
  const streamUpRef = useRef(false);
  const factoryRef = useRef(createEventSource);
  factoryRef.current = createEventSource;

  useEffect(() => {
    let disposed = false;
    let attempt = 0;
    let source: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const setStreamUp = (up: boolean) => {
      if (streamUpRef.current === up) return;
      streamUpRef.current = up;
      setStreamUpState(up);
    };

    const markDown = () => {
      if (streamUpRef.current) {
        // Poll right away instead of waiting a full interval: shows an outage quickly.
        void queryClient.invalidateQueries({ queryKey: queryKeys.status, exact: true });
      }
      setStreamUp(false);
    };

    const connect = () => {
      if (disposed) return;
      const url = eventsUrl(token);
      const es = factoryRef.current ? factoryRef.current(url) : defaultEventSource(url);
      if (!es) return; // No EventSource in this environment: polling only.
      source = es;
      es.onopen = () => {
        if (disposed || source !== es) return;
        attempt = 0;
        setStreamUp(true);
      };
      es.addEventListener("status", (event: MessageEvent) => {
        if (disposed || source !== es) return;
        const payload = parseStatus(event.data);
        if (!payload) return;
        attempt = 0;
        setStreamUp(true);
        // A fetch still in flight would overwrite this fresher snapshot with an older one.
        void queryClient.cancelQueries({ queryKey: queryKeys.status, exact: true });
        queryClient.setQueryData(queryKeys.status, payload);
      });
      es.onerror = () => {
        if (disposed || source !== es) return;
        es.close();
        source = null;
        markDown();
        const delay = backoffDelay(attempt, initialBackoffMs, maxBackoffMs);
        attempt += 1;
        timer = setTimeout(connect, delay);
      };
    };

    connect();
    return () => {
      disposed = true;
      if (timer !== undefined) clearTimeout(timer);
      source?.close();
      source = null;
      streamUpRef.current = false;
      setStreamUpState(false);
    };
  }, [token, queryClient, initialBackoffMs, maxBackoffMs]);

  const query = useQuery({
    ...statusQueryOptions(),
    refetchInterval: streamUp ? false : pollIntervalMs,
    refetchIntervalInBackground: true,
    refetchOnWindowFocus: !streamUp,
  });

  // When VMs or jobs moved, refresh the views that list them. The snapshot version also moves on
  // every loop tick (health fields), so compare a signature of what those views show instead.
  const signature = query.data ? snapshotSignature(query.data) : undefined;
  const seenSignature = useRef<string | undefined>(undefined);
  useEffect(() => {
    if (signature === undefined || signature === seenSignature.current) return;
    const first = seenSignature.current === undefined;
    seenSignature.current = signature;
    if (first) return;
    for (const queryKey of snapshotDependentKeys) {
      void queryClient.invalidateQueries({ queryKey: [...queryKey] });
    }
  }, [signature, queryClient]);

  let mode: ConnectionMode;
  if (streamUp) mode = "live";
  else if (query.isError && !isUnauthorized(query.error)) mode = "offline";
  else mode = "polling";

  return {
    data: query.data,
    error: streamUp ? null : query.error,
    isLoading: query.isLoading,
    mode,
    lastUpdatedAt: query.dataUpdatedAt > 0 ? query.dataUpdatedAt : null,
  };
}
