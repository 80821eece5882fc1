"use client";
/**
 * RateLimitTile: the GitHub rate-limit budget: calls remaining of the limit, a bar coloured by
 * how much is left, and when the budget resets.
 */
import { Gauge } from "lucide-react";
import { HealthTile } from "@/components/HealthTile";
import { NoData } from "@/components/NoData";
import { useNow } from "@/hooks/useNow";
import { useStatusSelector } from "@/hooks/useStatusStream";
import { formatDuration, formatNumber } from "@/lib/format";
import { cn } from "@/lib/utils";

export function RateLimitTile() {
  const github = useStatusSelector((s) => s.github);
  const now = useNow(1_000);
  const remaining = github?.rate_limit_remaining ?? null;
  const limit = github?.rate_limit_limit ?? null;
  const fraction = remaining !== null && limit ? remaining / limit : null;
  const tone =
    fraction === null
      ? "bg-muted"
      : fraction < 0.1
        ? "bg-red-500"
        : fraction < 0.3
          ? "bg-amber-400"
          : "bg-emerald-500";
  return (
    <HealthTile
      title="Rate-limit budget"
      icon={<Gauge className="size-3.5" />}
      testId="rate-limit"
      badge={
        <span className="text-sm font-semibold text-foreground tabular-nums">
          {remaining === null ? <NoData /> : formatNumber(remaining)}
          {limit !== null ? (
            <span className="font-normal text-muted-foreground"> / {formatNumber(limit)}</span>
          ) : null}
        </span>
      }
    >
      <div className="my-1 h-1.5 w-full overflow-hidden rounded-full bg-muted" aria-hidden="true">
        <div
          className={cn("h-full rounded-full", tone)}
          style={{ width: `${(fraction ?? 0) * 100}%` }}
        />
      </div>
      <span>
        {github?.rate_limit_reset_at
          ? `Resets ${github.rate_limit_reset_at * 1000 > now ? `in ${formatDuration(github.rate_limit_reset_at - now / 1000)}` : "now"}`
          : "No GitHub calls counted yet"}
      </span>
    </HealthTile>
  );
}
