/**
 * TanStack Query definitions: every fetch the dashboard makes goes through one of these
 * `queryOptions` factories, so keys and fetchers stay in one place.
 */
import { queryOptions } from "@tanstack/react-query";
import { api, isUnauthorized } from "./client";
import type { HistoryWindow } from "./types";

export const queryKeys = {
  status: ["status"] as const,
  vms: ["vms"] as const,
  vm: (vmId: number) => ["vm", vmId] as const,
  jobs: (limit: number) => ["jobs", limit] as const,
  job: (jobId: number) => ["job", jobId] as const,
  history: (window: HistoryWindow) => ["history", window] as const,
};

/** Keys refreshed whenever a new status snapshot arrives (their data moves with it). */
export const snapshotDependentKeys = [["vms"], ["vm"], ["jobs"], ["job"]] as const;

/** Retry transient failures once, never a 401 or a 404. */
export function retryOnce(failureCount: number, error: Error): boolean {
  if (isUnauthorized(error)) return false;
  if (error instanceof Error && "status" in error && (error as { status: number }).status < 500) {
    return false;
  }
  return failureCount < 1;
}

export const statusQueryOptions = () =>
  queryOptions({
    queryKey: queryKeys.status,
    queryFn: ({ signal }) => api.status(signal),
    retry: false,
  });

export const vmsQueryOptions = () =>
  queryOptions({
    queryKey: queryKeys.vms,
    queryFn: ({ signal }) => api.vms(signal),
    retry: retryOnce,
  });

export const vmDetailQueryOptions = (vmId: number) =>
  queryOptions({
    queryKey: queryKeys.vm(vmId),
    queryFn: ({ signal }) => api.vm(vmId, signal),
    retry: retryOnce,
  });

export const JOBS_LIMIT = 100;

export const jobsQueryOptions = (limit: number = JOBS_LIMIT) =>
  queryOptions({
    queryKey: queryKeys.jobs(limit),
    queryFn: ({ signal }) => api.jobs(limit, signal),
    retry: retryOnce,
  });

export const jobDetailQueryOptions = (jobId: number) =>
  queryOptions({
    queryKey: queryKeys.job(jobId),
    queryFn: ({ signal }) => api.job(jobId, signal),
    retry: retryOnce,
  });

export const historyQueryOptions = (window: HistoryWindow) =>
  queryOptions({
    queryKey: queryKeys.history(window),
    queryFn: ({ signal }) => api.history(window, signal),
    retry: retryOnce,
    refetchInterval: window === "1h" ? 30_000 : 120_000,
    refetchIntervalInBackground: true,
  });
