/**
 * Pure helpers about what blocks the system: a pool's failing starts, unhealthy or renamed
 * repositories, GitHub's rate limits and VMs kept after a failed job. Times are epoch seconds.
 */
import type {
  GitHubHealth,
  Job,
  Pool,
  RateLimitKind,
  RepositoryHealth,
  StartBackoff,
  StatusResponse,
  Vm,
} from "@/lib/api/types";

/** The pool's start back-off, null when its starts succeed (or the server predates the field). */
export function poolBackoff(pool: Pick<Pool, "start_backoff">): StartBackoff | null {
  return pool.start_backoff ?? null;
}

/** "secondary rate limit" (abuse detection) or "rate limit" (the hourly budget). */
export function rateLimitLabel(kind: RateLimitKind | null | undefined): string {
  return kind === "secondary" ? "secondary rate limit" : "rate limit";
}

/** Repositories that need attention: unhealthy ones and renamed ones, unhealthy first. */
export function repositoryIssues(github: GitHubHealth | undefined): RepositoryHealth[] {
  return (github?.repositories ?? [])
    .filter((repo) => !repo.healthy || repo.moved_to !== null)
    .sort((a, b) => Number(a.healthy) - Number(b.healthy) || a.name.localeCompare(b.name));
}

export function unhealthyRepositoryCount(github: GitHubHealth | undefined): number {
  return (github?.repositories ?? []).filter((repo) => !repo.healthy).length;
}

export interface KeptState {
  /** Epoch seconds until which the VM is kept. */
  until: number;
  /** Whole minutes left, rounded up; 0 once the time is up. */
  minutesLeft: number;
}

/** Set while a VM whose job failed is kept for `blacksmith-mini ssh`; `now` in epoch ms. */
export function keptState(vm: Pick<Vm, "kept_until" | "status">, nowMs: number): KeptState | null {
  const until = vm.kept_until ?? null;
  if (until === null || vm.status === "gone") return null;
  return { until, minutesLeft: Math.max(0, Math.ceil((until - nowMs / 1000) / 60)) };
}

export function sshCommand(vmId: number): string {
  return `blacksmith-mini ssh ${vmId}`;
}

/**
 * True when a queued job waits on a failure rather than on capacity: its pool's starts are backing
 * off or its repository is unhealthy.
 */
export function waitsOnFailure(
  job: Pick<Job, "status" | "pool" | "repository">,
  status: Pick<StatusResponse, "pools" | "github"> | undefined,
): boolean {
  if (job.status !== "queued" || !status) return false;
  const pool = status.pools.find((p) => p.name === job.pool);
  if (pool && poolBackoff(pool)) return true;
  return (status.github.repositories ?? []).some(
    (repo) => repo.name === job.repository && !repo.healthy,
  );
}
