"use client";
/**
 * JobDetails: a side panel for one job (opened from the timeline or a VM): GitHub links, labels,
 * every stage's time and duration, the VM that ran it, its conclusion and its events.
 */
import { useQuery } from "@tanstack/react-query";
import { AlertTriangle, Clock, ExternalLink } from "lucide-react";
import type { ReactNode } from "react";
import { JobDetailsSkeleton } from "@/components/skeletons";
import { Badge, type BadgeVariant } from "@/components/ui/badge";
import { Dialog, DialogDescription, DialogTitle, SheetContent } from "@/components/ui/dialog";
import { useNow } from "@/hooks/useNow";
import { jobDetailQueryOptions } from "@/lib/api/queries";
import type { JobDetail } from "@/lib/api/types";
import { formatDateTime, formatDuration } from "@/lib/format";
import {
  conclusionTone,
  jobLabel,
  jobUrl,
  runUrl,
  STAGES,
  stageTimings,
  statusText,
  type Tone,
} from "@/lib/jobs";

const TONE_BADGE: Record<Tone, BadgeVariant> = {
  success: "success",
  danger: "danger",
  warning: "warning",
  neutral: "secondary",
  info: "info",
  pending: "warning",
};

export interface JobDetailsProps {
  jobId: number | null;
  onClose: () => void;
  onSelectVm?: (vmId: number) => void;
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="flex min-w-0 flex-col">
      <dt className="text-[0.7rem] text-muted-foreground">{label}</dt>
      <dd className="truncate text-sm">{children}</dd>
    </div>
  );
}

function StageTable({ job, now }: { job: JobDetail; now: number }) {
  const timings = stageTimings(job, now);
  const s = job.stages;
  const stamps: { label: string; at: number | null }[] = [
    { label: "Queued", at: s.queued },
    { label: "VM requested", at: s.vm_requested },
    { label: "VM ready", at: s.vm_ready },
    { label: "Started", at: s.started },
    { label: "Completed", at: s.completed },
  ];
  return (
    <div className="grid gap-3 sm:grid-cols-2">
      <table className="w-full text-sm" data-testid="job-stage-times">
        <caption className="pb-1 text-left text-xs font-medium text-muted-foreground">
          Timestamps
        </caption>
        <tbody>
          {stamps.map((stamp) => (
            <tr key={stamp.label} className="border-b border-border/60 last:border-0">
              <th scope="row" className="py-1 pr-2 text-left font-normal text-muted-foreground">
                {stamp.label}
              </th>
              <td className="py-1 text-right tabular-nums">{formatDateTime(stamp.at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <table className="w-full text-sm" data-testid="job-stage-durations">
        <caption className="pb-1 text-left text-xs font-medium text-muted-foreground">
          Durations
        </caption>
        <tbody>
          {timings.map((timing, i) => (
            <tr key={timing.key} className="border-b border-border/60 last:border-0">
              <th scope="row" className="py-1 pr-2 text-left font-normal text-muted-foreground">
                {STAGES[i]?.label}
              </th>
              <td className="py-1 text-right tabular-nums">
                {timing.prewarmed ? (
                  <span className="text-emerald-400">warm VM</span>
                ) : timing.duration === null ? (
                  "—"
                ) : (
                  <>
                    {formatDuration(timing.duration)}
                    {timing.open ? <span className="text-muted-foreground"> so far</span> : null}
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function JobBody({ job, onSelectVm }: { job: JobDetail; onSelectVm?: (vmId: number) => void }) {
  const now = useNow(1_000) / 1000;
  const tone = conclusionTone(job);
  return (
    <div className="flex flex-col gap-5 overflow-y-auto p-5" data-testid="job-details">
      <div className="flex flex-col gap-1 pr-8">
        <DialogTitle className="flex flex-wrap items-center gap-2">
          {jobLabel(job)}
          <Badge variant={TONE_BADGE[tone]}>{statusText(job)}</Badge>
        </DialogTitle>
        <DialogDescription>
          {job.repository} · {job.workflow_name ?? "workflow"} · job #{job.id}
        </DialogDescription>
      </div>
      <div className="flex flex-wrap gap-3 text-sm">
        <a
          href={runUrl(job)}
          target="_blank"
          rel="noreferrer"
          className="inline-flex items-center gap-1 text-primary underline-offset-2 outline-none hover:underline focus-visible:ring-2 focus-visible:ring-ring"
        >
          Run #{job.run_id}
          {job.run_attempt > 1 ? ` (attempt ${job.run_attempt})` : ""} on GitHub
          <ExternalLink className="size-3.5" />
        </a>
        <a
          href={jobUrl(job)}
          target="_blank"
          rel="noreferrer"
          className="inline-flex items-center gap-1 text-primary underline-offset-2 outline-none hover:underline focus-visible:ring-2 focus-visible:ring-ring"
        >
          Job on GitHub <ExternalLink className="size-3.5" />
        </a>
      </div>
      {job.unmatched_reason ? (
        <p className="flex items-start gap-1.5 rounded-md border border-amber-500/30 bg-amber-500/10 p-2 text-sm text-amber-300">
          <AlertTriangle className="mt-0.5 size-4 shrink-0" />
          No pool can run this job: {job.unmatched_reason}
        </p>
      ) : job.status === "queued" && job.waiting_reason ? (
        <p className="flex items-start gap-1.5 rounded-md border border-border bg-muted/40 p-2 text-sm">
          <Clock className="mt-0.5 size-4 shrink-0" />
          Waiting: {job.waiting_reason}
        </p>
      ) : null}
      <dl className="grid grid-cols-2 gap-x-4 gap-y-3 sm:grid-cols-3">
        <Row label="Repository">{job.repository}</Row>
        <Row label="Workflow">{job.workflow_name ?? "—"}</Row>
        <Row label="Conclusion">
          {job.conclusion ?? (job.status === "completed" ? "—" : "not finished")}
        </Row>
        <Row label="VM">
          {job.vm_id !== null ? (
            onSelectVm ? (
              <button
                type="button"
                className="text-primary underline-offset-2 outline-none hover:underline focus-visible:ring-2 focus-visible:ring-ring"
                onClick={() => onSelectVm(job.vm_id as number)}
              >
                VM {job.vm_id}
              </button>
            ) : (
              `VM ${job.vm_id}`
            )
          ) : (
            "none yet"
          )}
        </Row>
        <Row label="Pool">{job.pool ?? "—"}</Row>
        <Row label="Runner">
          <span className="font-mono text-xs">{job.runner_name ?? "—"}</span>
        </Row>
      </dl>
      <div className="flex flex-wrap items-center gap-1">
        <span className="text-[0.7rem] text-muted-foreground">runs-on</span>
        {job.labels.length ? (
          job.labels.map((label) => (
            <Badge key={label} variant="outline" className="font-mono">
              {label}
            </Badge>
          ))
        ) : (
          <span className="text-xs text-muted-foreground">no labels</span>
        )}
      </div>
      <StageTable job={job} now={now} />
      <section aria-label="Events" className="flex flex-col gap-1">
        <h3 className="text-xs font-medium text-muted-foreground">Events</h3>
        {job.events.length === 0 ? (
          <p className="text-xs text-muted-foreground">No events recorded.</p>
        ) : (
          <ol className="flex flex-col gap-1 text-xs">
            {[...job.events]
              .sort((a, b) => a.at - b.at)
              .map((event) => (
                <li key={event.id} className="grid grid-cols-[9.5rem_8rem_1fr] gap-2">
                  <span className="text-muted-foreground tabular-nums">
                    {formatDateTime(event.at)}
                  </span>
                  <span className="truncate font-mono text-primary">{event.kind}</span>
                  <span className="break-words">{event.message}</span>
                </li>
              ))}
          </ol>
        )}
      </section>
    </div>
  );
}

export function JobDetails({ jobId, onClose, onSelectVm }: JobDetailsProps) {
  const query = useQuery({ ...jobDetailQueryOptions(jobId ?? -1), enabled: jobId !== null });
  return (
    <Dialog
      open={jobId !== null}
      onOpenChange={(open) => {
        if (!open) onClose();
      }}
    >
      <SheetContent aria-describedby={undefined}>
        {query.data && query.data.id === jobId ? (
          <JobBody job={query.data} onSelectVm={onSelectVm} />
        ) : query.isError ? (
          <div className="flex flex-col gap-2 p-5" role="alert">
            <DialogTitle>Job #{jobId}</DialogTitle>
            <p className="text-sm text-red-400">Could not load this job: {query.error.message}</p>
          </div>
        ) : (
          <>
            <DialogTitle className="sr-only">Loading job #{jobId}</DialogTitle>
            <JobDetailsSkeleton />
          </>
        )}
      </SheetContent>
    </Dialog>
  );
}
