"use client";
/**
 * PoolBackoffWarning: under a pool whose VM starts keep failing, how many failed, since when, the
 * last failure with its fix, and a live countdown to the next attempt.
 */
import { AlertTriangle } from "lucide-react";
import { CodeText } from "@/components/CodeText";
import { useNow } from "@/hooks/useNow";
import type { StartBackoff } from "@/lib/api/types";
import { formatClock, formatCountdown } from "@/lib/format";

export function PoolBackoffWarning({ pool, backoff }: { pool: string; backoff: StartBackoff }) {
  const now = useNow(1_000);
  const due = backoff.next_try_at * 1000 <= now;
  return (
    <div
      className="flex flex-col gap-0.5 rounded-md border border-red-500/30 bg-red-500/10 px-2 py-1 text-[0.7rem] text-red-300"
      data-testid="pool-backoff"
      data-pool={pool}
    >
      <span className="flex items-center gap-1 font-medium">
        <AlertTriangle className="size-3 shrink-0" />
        <span>
          {backoff.failures} failed {backoff.failures === 1 ? "start" : "starts"} since{" "}
          {formatClock(backoff.since)} ·{" "}
          <span className="tabular-nums" data-testid="pool-backoff-countdown">
            {due ? "retrying now" : `next try in ${formatCountdown(backoff.next_try_at, now)}`}
          </span>
        </span>
      </span>
      <span className="break-words text-red-200/90">
        <CodeText text={backoff.reason} />
      </span>
    </div>
  );
}
