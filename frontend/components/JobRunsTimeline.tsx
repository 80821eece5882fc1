"use client";
/**
 * JobRunsTimeline: queued, running and recent jobs on a shared time axis. Each bar is split into
 * the job's stages (waiting for a VM, VM booting, runner online, running); the running part takes
 * the colour of the conclusion. Clicking a row opens the job's details.
 *
 * The open jobs (queued, running, no pool can run them) come from the status stream; the
 * completed ones from the job history (`GET /api/jobs`), refreshed when a snapshot shows jobs moved.
 */
import { useQuery } from "@tanstack/react-query";
import { AlertTriangle, Clock } from "lucide-react";
import { type ReactNode, useMemo, useState } from "react";
import { SIZES, TimelineRowsSkeleton } from "@/components/skeletons";
import { Badge, type BadgeVariant } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Segmented } from "@/components/ui/segmented";
import { useNow } from "@/hooks/useNow";
import { shallowEqual, useStatusConnection, useStatusSelector } from "@/hooks/useStatusStream";
import { completedJobsQueryOptions } from "@/lib/api/queries";
import type { Job, StatusResponse } from "@/lib/api/types";
import { formatClock, formatDuration } from "@/lib/format";
import { waitsOnFailure } from "@/lib/health";
import {
  conclusionTone,
  jobLabel,
  jobListing,
  jobSegments,
  liveJobs,
  type Segment,
  STAGE_BAR,
  statusText,
  TONE_BAR,
  type Tone,
} from "@/lib/jobs";
import { cn } from "@/lib/utils";

type Range = "fit" | "15m" | "1h" | "6h";
const RANGES: readonly { value: Range; label: string }[] = [
  { value: "fit", label: "Fit" },
  { value: "15m", label: "15m" },
  { value: "1h", label: "1h" },
  { value: "6h", label: "6h" },
];
const RANGE_SECONDS: Record<Exclude<Range, "fit">, number> = {
  "15m": 900,
  "1h": 3600,
  "6h": 21600,
};
const MIN_SPAN_SECONDS = 30;

const TONE_BADGE: Record<Tone, BadgeVariant> = {
  success: "success",
  danger: "danger",
  warning: "warning",
  neutral: "secondary",
  info: "info",
  pending: "warning",
};

export interface JobRunsTimelineProps {
  onSelectJob: (jobId: number) => void;
  selectedJobId?: number | null;
}

function niceStep(spanSeconds: number): number {
  const steps = [
    5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
  ];
  return steps.find((s) => spanSeconds / s <= 6) ?? 86400;
}

function segmentClass(segment: Segment, tone: Tone): string {
  if (segment.key === "running") return cn(TONE_BAR[tone], segment.open && "bar-live");
  return STAGE_BAR[segment.key];
}

function Legend() {
  const items = [
    { label: "waiting for a VM", className: STAGE_BAR.waiting },
    { label: "VM booting", className: STAGE_BAR.booting },
    { label: "runner online", className: STAGE_BAR.online },
    { label: "running / success", className: TONE_BAR.success },
    { label: "failure", className: TONE_BAR.danger },
    { label: "timed out", className: TONE_BAR.warning },
    { label: "cancelled", className: TONE_BAR.neutral },
  ];
  return (
    <ul
      className="flex flex-wrap gap-x-3 gap-y-1 text-[0.7rem] text-muted-foreground"
      aria-label="Legend"
    >
      {items.map((item) => (
        <li key={item.label} className="flex items-center gap-1">
          <span
            className={cn("inline-block h-2.5 w-4 rounded-sm", item.className)}
            aria-hidden="true"
          />
          {item.label}
        </li>
      ))}
    </ul>
  );
}

function JobRow({
  job,
  domain,
  now,
  selected,
  blocked,
  onSelect,
}: {
  job: Job;
  domain: [number, number];
  now: number;
  selected: boolean;
  /** Queued behind a failure (its pool's starts back off, its repository is unhealthy). */
  blocked: boolean;
  onSelect: () => void;
}) {
  const tone = conclusionTone(job);
  const segments = jobSegments(job, now);
  const [start, end] = domain;
  const span = end - start;
  const pct = (t: number) => ((Math.min(Math.max(t, start), end) - start) / span) * 100;
  const reason = job.unmatched_reason ?? (job.status === "queued" ? job.waiting_reason : null);
  const warn = job.unmatched_reason !== null || blocked;
  const total =
    segments.length > 0 ? (segments.at(-1)?.end ?? 0) - (segments[0]?.start ?? 0) : null;
  return (
    <li>
      <button
        type="button"
        onClick={onSelect}
        aria-label={`Job ${jobLabel(job)} (${statusText(job)}): show details`}
        data-testid="timeline-job"
        data-job-id={job.id}
        className={cn(
          "group flex h-11 w-full items-center gap-3 rounded-md px-2 text-left outline-none hover:bg-accent/60 focus-visible:ring-2 focus-visible:ring-ring",
          selected && "bg-accent",
        )}
      >
        <div className="flex w-56 shrink-0 flex-col overflow-hidden">
          <div className="flex items-center gap-1.5">
            <Badge variant={TONE_BADGE[tone]} className="px-1 py-0 text-[0.65rem]">
              {statusText(job)}
            </Badge>
            <span className="truncate text-sm font-medium">{jobLabel(job)}</span>
          </div>
          {reason ? (
            <span
              className={cn(
                "flex items-center gap-1 truncate text-[0.7rem]",
                warn ? "text-amber-400" : "text-muted-foreground",
              )}
              title={reason}
              data-blocked={blocked ? "true" : undefined}
            >
              {warn ? (
                <AlertTriangle className="size-3 shrink-0" />
              ) : (
                <Clock className="size-3 shrink-0" />
              )}
              <span className="truncate">{reason}</span>
            </span>
          ) : (
            <span className="truncate text-[0.7rem] text-muted-foreground">
              {job.repository}
              {job.vm_id !== null ? ` · VM ${job.vm_id}` : ""}
            </span>
          )}
        </div>
        <div className="relative h-4 min-w-0 flex-1 rounded-sm bg-muted/40">
          {segments.map((segment) => {
            if (segment.end < start || segment.start > end) return null;
            const left = pct(segment.start);
            const width = Math.max(pct(segment.end) - left, 0.4);
            return (
              <div
                key={segment.key}
                data-stage={segment.key}
                title={`${segment.label}: ${formatDuration(segment.end - segment.start)}${segment.open ? " (so far)" : ""}`}
                className={cn(
                  "absolute inset-y-0 first:rounded-l-sm last:rounded-r-sm",
                  segmentClass(segment, tone),
                  job.unmatched_reason && "ring-1 ring-amber-400/70",
                )}
                style={{ left: `${left}%`, width: `${width}%` }}
              />
            );
          })}
        </div>
        <span className="w-16 shrink-0 text-right text-xs text-muted-foreground tabular-nums">
          {formatDuration(total)}
        </span>
      </button>
    </li>
  );
}

function Axis({ domain }: { domain: [number, number] }) {
  const [start, end] = domain;
  const step = niceStep(end - start);
  const ticks: number[] = [];
  // Leave room at the right end for the "now" label.
  const last = end - (end - start) * 0.08;
  for (let t = Math.ceil(start / step) * step; t <= last; t += step) ticks.push(t);
  return (
    <div className="flex items-center gap-3 px-2" aria-hidden="true">
      <div className="w-56 shrink-0" />
      <div className="relative h-5 flex-1 border-b border-border">
        {ticks.map((t) => (
          <span
            key={t}
            className="absolute bottom-0.5 -translate-x-1/2 text-[0.65rem] text-muted-foreground tabular-nums"
            style={{ left: `${((t - start) / (end - start)) * 100}%` }}
          >
            {formatClock(t).slice(0, step < 60 ? 8 : 5)}
          </span>
        ))}
        <span className="absolute right-0 bottom-0.5 text-[0.65rem] font-medium text-primary">
          now
        </span>
      </div>
      <div className="w-16 shrink-0" />
    </div>
  );
}

/** What the rows need from a snapshot besides the jobs: why a queued job is blocked. */
const selectBlockers = (s: StatusResponse): Pick<StatusResponse, "pools" | "github"> => ({
  pools: s.pools,
  github: s.github,
});

export function JobRunsTimeline({ onSelectJob, selectedJobId = null }: JobRunsTimelineProps) {
  const [range, setRange] = useState<Range>("fit");
  const live = useStatusSelector(liveJobs);
  const blockers = useStatusSelector(selectBlockers, shallowEqual);
  const simulate = useStatusSelector((s) => s.simulate);
  const { isLoading: statusLoading } = useStatusConnection();
  const jobsQuery = useQuery(completedJobsQueryOptions());
  const nowMs = useNow(1_000);
  const now = nowMs / 1000;
  const jobs = useMemo(() => jobListing(live, jobsQuery.data), [live, jobsQuery.data]);

  const domain = useMemo((): [number, number] => {
    if (range !== "fit") return [now - RANGE_SECONDS[range], now];
    const starts = jobs
      .map((j) => j.stages.queued ?? j.stages.vm_requested ?? j.stages.started)
      .filter((t): t is number => t !== null);
    const earliest = starts.length ? Math.min(...starts) : now - MIN_SPAN_SECONDS;
    const span = Math.max(now - earliest, MIN_SPAN_SECONDS) * 1.04;
    return [now - span, now];
  }, [jobs, range, now]);

  const loading = jobs.length === 0 && (jobsQuery.isPending || statusLoading) && !jobsQuery.isError;
  const counts = {
    queued: jobs.filter((j) => j.status === "queued").length,
    running: jobs.filter((j) => j.status === "assigned" || j.status === "in_progress").length,
  };

  let body: ReactNode;
  if (loading) {
    body = <TimelineRowsSkeleton />;
  } else if (jobs.length === 0 && jobsQuery.isError) {
    body = (
      <div
        className="flex h-full flex-col items-center justify-center gap-1 text-center text-sm"
        role="alert"
      >
        <AlertTriangle className="size-5 text-red-400" />
        <p className="font-medium">Could not load jobs</p>
        <p className="text-xs text-muted-foreground">{jobsQuery.error.message}</p>
      </div>
    );
  } else if (jobs.length === 0) {
    body = (
      <div className="flex h-full flex-col items-center justify-center gap-1 px-6 text-center">
        <p className="text-sm font-medium">No jobs yet</p>
        <p className="max-w-sm text-xs text-muted-foreground">
          Jobs appear here when GitHub queues a workflow whose <code>runs-on</code> labels match a
          pool
          {simulate ? ", or when you queue one with the simulator (Queue a job, top right)" : ""}.
        </p>
      </div>
    );
  } else {
    body = (
      <div className="flex h-full flex-col">
        <Axis domain={domain} />
        <ol className="flex-1 overflow-y-auto py-1" aria-label="Jobs">
          {jobs.map((job) => (
            <JobRow
              key={job.id}
              job={job}
              domain={domain}
              now={now}
              selected={job.id === selectedJobId}
              blocked={waitsOnFailure(job, blockers)}
              onSelect={() => onSelectJob(job.id)}
            />
          ))}
        </ol>
      </div>
    );
  }

  return (
    <Card aria-labelledby="timeline-title" data-testid="job-runs-timeline">
      <CardHeader>
        <div className="flex flex-col gap-0.5">
          <CardTitle id="timeline-title">Job runs</CardTitle>
          <CardDescription>
            {counts.queued} queued · {counts.running} running ·{" "}
            {jobs.length - counts.queued - counts.running} recent
          </CardDescription>
        </div>
        <Segmented label="Time range" value={range} options={RANGES} onChange={setRange} />
        <div className="w-full">
          <Legend />
        </div>
      </CardHeader>
      <CardContent className={cn(SIZES.timelineBody, "px-2 pt-2 pb-3")}>{body}</CardContent>
    </Card>
  );
}
