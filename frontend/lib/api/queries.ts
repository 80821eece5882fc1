/**
 * TanStack Query definitions: every fetch the dashboard makes goes through one of these
 * `queryOptions` factories, so keys and fetchers stay in one place.
 *
 * Live VMs and jobs come from the status stream only (`hooks/useStatusStream.tsx`); the queries
 * here are for resources the stream does not carry: one VM or job by id, the history of gone VMs
 * and completed jobs, the metric history and the control state.
 */
import { type QueryClient, queryOptions } from "@tanstack/react-query";
import { ApiError, api, isUnauthorized } from "./client";
import type { ControlState, HistoryWindow, Job, StatusResponse, Vm } from "./types";

export const queryKeys = {
  status: ["status"] as const,
  vms: ["vms"] as const,
  vm: (vmId: number) => ["vm", vmId] as const,
  jobs: (limit: number) => ["jobs", limit] as const,
  job: (jobId: number) => ["job", jobId] as const,
  history: (window: HistoryWindow) => ["history", window] as const,
  control: ["control"] as const,
};

/** Keys refreshed whenever a new status snapshot arrives (their data moves with it). */
export const snapshotDependentKeys = [["vms"], ["vm"], ["jobs"], ["job"]] as const;

/** Retry transient failures once, never a 401 or a 404. */
export function retryOnce(failureCount: number, error: Error): boolean {
  if (isUnauthorized(error)) return false;
  if (error instanceof ApiError && error.status < 500) {
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

/** VM history: the most recent gone VMs (the live ones are the status stream's). */
export const goneVmsQueryOptions = () =>
  queryOptions({
    queryKey: queryKeys.vms,
    queryFn: ({ signal }) => api.vms(signal),
    select: (response): Vm[] => response.vms.filter((vm) => vm.status === "gone"),
    retry: retryOnce,
  });

export const vmDetailQueryOptions = (vmId: number) =>
  queryOptions({
    queryKey: queryKeys.vm(vmId),
    queryFn: ({ signal }) => api.vm(vmId, signal),
    retry: retryOnce,
  });

export const JOBS_LIMIT = 100;

/** Job history: the most recent completed jobs (the open ones are the status stream's). */
export const completedJobsQueryOptions = (limit: number = JOBS_LIMIT) =>
  queryOptions({
    queryKey: queryKeys.jobs(limit),
    queryFn: ({ signal }) => api.jobs(limit, signal),
    select: (response): Job[] => response.jobs.filter((job) => job.status === "completed"),
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

/** The status snapshot with an operator action's answer applied (until the next snapshot). */
export function withControlState(status: StatusResponse, control: ControlState): StatusResponse {
  const paused = new Set(control.paused_pools);
  const limits = new Map(control.pools.map((pool) => [pool.name, pool]));
  return {
    ...status,
    draining: control.draining,
    pools: status.pools.map((pool) => {
      const current = limits.get(pool.name);
      return {
        ...pool,
        paused: paused.has(pool.name),
        min_idle: current?.min_idle ?? pool.min_idle,
        max_vms: current?.max_vms ?? pool.max_vms,
      };
    }),
  };
}

/**
 * After an operator action: show its answer at once, then fetch the status again right away
 * (the event stream pushes it too, once the loop has acted on it).
 */
export function applyControlState(client: QueryClient, control: ControlState): void {
  client.setQueryData(queryKeys.control, control);
  client.setQueryData<StatusResponse>(queryKeys.status, (old) =>
    old ? withControlState(old, control) : old,
  );
  void client.invalidateQueries({ queryKey: queryKeys.status, exact: true });
}

/** After a VM was stopped: refresh the status and every view listing VMs. */
export function refreshAfterVmChange(client: QueryClient, vmId: number): void {
  void client.invalidateQueries({ queryKey: queryKeys.status, exact: true });
  void client.invalidateQueries({ queryKey: queryKeys.vms });
  void client.invalidateQueries({ queryKey: queryKeys.vm(vmId) });
}
