/** Pure helpers about jobs: their stages, colours, GitHub links and the listing order. */
import type { Job, JobStages, StatusResponse } from "@/lib/api/types";

export type StageKey = "waiting" | "booting" | "online" | "running";

export interface StageDef {
  key: StageKey;
  label: string;
  from: keyof JobStages;
  to: keyof JobStages;
}

export const STAGES: readonly StageDef[] = [
  { key: "waiting", label: "waiting for a VM", from: "queued", to: "vm_requested" },
  { key: "booting", label: "VM booting", from: "vm_requested", to: "vm_ready" },
  { key: "online", label: "runner online", from: "vm_ready", to: "started" },
  { key: "running", label: "running", from: "started", to: "completed" },
];

export interface Segment {
  key: StageKey;
  label: string;
  /** Epoch seconds. */
  start: number;
  end: number;
  /** True when the stage has not finished yet (its end is "now"). */
  open: boolean;
}

/**
 * The bar of a job, one segment per stage reached. A stage that started before the previous one
 * ended (a pre-warmed VM was ready before the job was queued) is clipped so segments never overlap.
 */
export function jobSegments(job: Job, nowSeconds: number): Segment[] {
  const s = job.stages;
  const segments: Segment[] = [];
  let cursor = s.queued ?? s.vm_requested ?? s.vm_ready ?? s.started;
  if (cursor === null || cursor === undefined) return segments;
  for (const stage of STAGES) {
    const from = s[stage.from];
    if (from === null) continue;
    const to = s[stage.to];
    const start = Math.max(from, cursor);
    const open = to === null && job.status !== "completed";
    const end = to ?? (open ? nowSeconds : start);
    if (end <= start && !open) {
      cursor = Math.max(cursor, end);
      continue;
    }
    segments.push({ key: stage.key, label: stage.label, start, end: Math.max(end, start), open });
    cursor = Math.max(end, start);
    if (open) break;
  }
  return segments;
}

export interface StageTiming {
  key: StageKey;
  label: string;
  /** Seconds spent in the stage, null if it has not started. */
  duration: number | null;
  open: boolean;
  /** The VM was ready before the job was queued (warm pool). */
  prewarmed: boolean;
}

export function stageTimings(job: Job, nowSeconds: number): StageTiming[] {
  const s = job.stages;
  return STAGES.map((stage) => {
    const from = s[stage.from];
    const to = s[stage.to];
    // A VM requested (or ready) before the job was queued was waiting for it: a warm VM.
    const prewarmed =
      (stage.key === "waiting" || stage.key === "booting") &&
      s.queued !== null &&
      to !== null &&
      (stage.key === "waiting" ? to < s.queued : to <= s.queued);
    if (from === null) {
      return { key: stage.key, label: stage.label, duration: null, open: false, prewarmed };
    }
    const open = to === null && job.status !== "completed";
    const end = to ?? (open ? nowSeconds : null);
    const start = stage.key === "running" || s.queued === null ? from : Math.max(from, s.queued);
    return {
      key: stage.key,
      label: stage.label,
      duration: end === null ? null : Math.max(0, end - start),
      open,
      prewarmed,
    };
  });
}

export type Tone = "success" | "danger" | "warning" | "neutral" | "info" | "pending";

export function conclusionTone(job: Pick<Job, "status" | "conclusion">): Tone {
  if (job.status !== "completed") return job.status === "queued" ? "pending" : "info";
  switch (job.conclusion) {
    case "success":
      return "success";
    case "failure":
    case "startup_failure":
      return "danger";
    case "timed_out":
      return "warning";
    default:
      return "neutral";
  }
}

/** Tailwind background class of the "running" segment, by conclusion. */
export const TONE_BAR: Record<Tone, string> = {
  success: "bg-emerald-500",
  danger: "bg-red-500",
  warning: "bg-orange-500",
  neutral: "bg-zinc-500",
  info: "bg-sky-500",
  pending: "bg-amber-400",
};

export const STAGE_BAR: Record<Exclude<StageKey, "running">, string> = {
  waiting: "bar-waiting",
  booting: "bg-violet-500/70",
  online: "bg-cyan-400/70",
};

export function jobLabel(job: Pick<Job, "id" | "name" | "workflow_name">): string {
  return job.name ?? job.workflow_name ?? `job ${job.id}`;
}

export function statusText(job: Pick<Job, "status" | "conclusion">): string {
  if (job.status === "completed") return job.conclusion ?? "completed";
  return job.status.replace("_", " ");
}

export function runUrl(job: Pick<Job, "repository" | "run_id" | "html_url">): string {
  const fromHtml = job.html_url?.match(/^(https?:\/\/[^?#]+\/actions\/runs\/\d+)/)?.[1];
  return fromHtml ?? `https://github.com/${job.repository}/actions/runs/${job.run_id}`;
}

export function jobUrl(job: Pick<Job, "id" | "repository" | "run_id" | "html_url">): string {
  return job.html_url ?? `${runUrl(job)}/job/${job.id}`;
}

function startOf(job: Job): number {
  return job.stages.queued ?? job.stages.vm_requested ?? job.stages.started ?? 0;
}

/** Newest first (by when the job was queued), then by id. */
export function sortByStart(jobs: readonly Job[]): Job[] {
  return [...jobs].sort((a, b) => startOf(b) - startOf(a) || b.id - a.id);
}

/**
 * The open jobs of a status snapshot, newest first: queued and running ones. The unmatched jobs
 * (no pool can run them) are queued jobs too, so each job is listed once.
 */
export function liveJobs(
  status: Pick<StatusResponse, "queued_jobs" | "running_jobs" | "unmatched_jobs">,
): Job[] {
  const byId = new Map<number, Job>();
  for (const job of [...status.unmatched_jobs, ...status.queued_jobs, ...status.running_jobs]) {
    if (!byId.has(job.id)) byId.set(job.id, job);
  }
  return sortByStart([...byId.values()]);
}

/**
 * The timeline's rows: the open jobs of the status stream, then the completed ones of the job
 * history (newest first). Shown one after the other, not merged: a job the history already calls
 * completed while the stream still has it open is shown once, open, until the next snapshot.
 */
export function jobListing(
  live: readonly Job[] | undefined,
  completed: readonly Job[] | undefined,
): Job[] {
  const liveIds = new Set((live ?? []).map((job) => job.id));
  return [...(live ?? []), ...sortByStart((completed ?? []).filter((job) => !liveIds.has(job.id)))];
}
