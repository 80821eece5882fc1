"use client";
/**
 * SystemOverview: the headline figures (active VMs, queue, spawn and death rates, saturation,
 * success rate) with a one-hour trend each, the health of GitHub (which rate limit blocks it, the
 * repositories that are unhealthy or renamed), its rate-limit budget and the reconcile loop, and
 * the pools with their operator controls (pause, resume, limits) and start back-off.
 *
 * Every tile selects its own slice of the status stream; the trends come from `GET /api/history`.
 * The health tiles live in GitHubHealthTile, RateLimitTile and LoopTile (sharing HealthTile).
 */
import { useQuery } from "@tanstack/react-query";
import { Cpu, Gauge, ListTodo, Skull, Sparkles, Timer } from "lucide-react";
import type { ReactNode } from "react";
import { GitHubHealthTile } from "@/components/GitHubHealthTile";
import { LoopTile } from "@/components/LoopTile";
import { NoData } from "@/components/NoData";
import { PoolsTile } from "@/components/PoolsPanel";
import { RateLimitTile } from "@/components/RateLimitTile";
import { Sparkline } from "@/components/Sparkline";
import { HEALTH_GRID, OVERVIEW_GRID, SIZES, SystemOverviewSkeleton } from "@/components/skeletons";
import { Card } from "@/components/ui/card";
import { shallowEqual, useStatusConnection, useStatusSelector } from "@/hooks/useStatusStream";
import { historyQueryOptions } from "@/lib/api/queries";
import type { HistoryResponse, Metrics, Pool, StatusResponse } from "@/lib/api/types";
import { formatNumber, formatPercent } from "@/lib/format";
import { cn } from "@/lib/utils";

function StatTile({
  label,
  icon,
  value,
  unit,
  caption,
  trend,
  testId,
}: {
  label: string;
  icon: ReactNode;
  value: string | null;
  unit?: string;
  caption: ReactNode;
  trend: ReactNode;
  testId: string;
}) {
  return (
    <Card className={cn(SIZES.statTile, "justify-between gap-1 p-3")} data-testid={testId}>
      <div className="flex items-center gap-1.5 text-xs text-muted-foreground">
        {icon}
        <h3 className="truncate font-medium">{label}</h3>
      </div>
      <div className="flex items-baseline gap-1">
        <span className="text-2xl font-semibold tabular-nums" data-testid={`${testId}-value`}>
          {value === null ? <NoData /> : value}
        </span>
        {value !== null && unit ? (
          <span className="text-xs text-muted-foreground">{unit}</span>
        ) : null}
      </div>
      <div className="text-muted-foreground/80">{trend}</div>
      <div className="truncate text-[0.7rem] text-muted-foreground">{caption}</div>
    </Card>
  );
}

/** "default 3/10 · large 0/2": active VMs of each pool against its own cap. */
export function poolsCaption(pools: readonly Pool[]): string {
  return pools
    .map((pool) => {
      const active = Object.entries(pool.vms_by_status)
        .filter(([status]) => status !== "gone")
        .reduce((sum, [, count]) => sum + count, 0);
      return `${pool.name} ${active}/${pool.max_vms}`;
    })
    .join(" · ");
}

function perMinute(value: number | null, stepSeconds: number): number | null {
  return value === null ? null : value / Math.max(stepSeconds / 60, 1 / 60);
}

interface Figures {
  activeVms: number;
  maxVms: number;
  queuedJobs: number;
  metrics: Metrics;
  busy: number;
  idle: number;
  starting: number;
  unmatched: number;
  completed: number;
  pools: Pool[];
}

function selectFigures(status: StatusResponse): Figures {
  const byStatus = (s: string) => status.vms.filter((vm) => vm.status === s).length;
  return {
    activeVms: status.active_vms_count,
    maxVms: status.max_vms,
    queuedJobs: status.queued_jobs_count,
    metrics: status.metrics,
    busy: byStatus("busy"),
    idle: byStatus("idle"),
    starting: byStatus("booting") + byStatus("pending"),
    unmatched: status.unmatched_jobs.length,
    completed: status.completed_jobs_total,
    pools: status.pools,
  };
}

/** The headline figures with their one-hour trends. */
function StatTiles() {
  const figures = useStatusSelector(selectFigures, shallowEqual);
  const history = useQuery(historyQueryOptions("1h"));
  const h: HistoryResponse | undefined = history.data;
  const step = h?.step_seconds ?? 60;
  const points = h?.points ?? [];
  const maxVms = figures?.maxVms ?? null;
  const metrics = figures?.metrics;
  const unmatched = figures?.unmatched ?? 0;
  const completed = figures?.completed ?? null;
  const success = metrics?.success_rate_percent ?? null;
  const pools = figures?.pools ?? [];

  return (
    <div className={OVERVIEW_GRID}>
      <StatTile
        testId="stat-active-vms"
        label="Active VMs"
        icon={<Cpu className="size-3.5" />}
        value={figures ? `${figures.activeVms}` : null}
        unit={maxVms !== null ? `of ${maxVms}` : undefined}
        caption={
          figures
            ? `${figures.busy} busy · ${figures.idle} idle · ${figures.starting} starting`
            : "no data yet"
        }
        trend={<Sparkline label="Active VMs" values={points.map((p) => p.active_vms)} />}
      />
      <StatTile
        testId="stat-queued-jobs"
        label="Queued jobs"
        icon={<ListTodo className="size-3.5" />}
        value={figures ? `${figures.queuedJobs}` : null}
        caption={
          unmatched > 0 ? (
            <span className="text-amber-400">{unmatched} no pool can run</span>
          ) : (
            "waiting for a VM"
          )
        }
        trend={<Sparkline label="Queued jobs" values={points.map((p) => p.queued_jobs)} />}
      />
      <StatTile
        testId="stat-spawn-rate"
        label="Spawn rate"
        icon={<Sparkles className="size-3.5" />}
        value={
          metrics?.spawn_rate_per_min == null ? null : formatNumber(metrics.spawn_rate_per_min, 1)
        }
        unit="/min"
        caption="VMs started, last 5 min"
        trend={
          <Sparkline label="Spawn rate" values={points.map((p) => perMinute(p.spawns, step))} />
        }
      />
      <StatTile
        testId="stat-death-rate"
        label="Death rate"
        icon={<Skull className="size-3.5" />}
        value={
          metrics?.death_rate_per_min == null ? null : formatNumber(metrics.death_rate_per_min, 1)
        }
        unit="/min"
        caption="VMs gone, last 5 min"
        trend={
          <Sparkline label="Death rate" values={points.map((p) => perMinute(p.deaths, step))} />
        }
      />
      <StatTile
        testId="stat-saturation"
        label="Pool saturation"
        icon={<Gauge className="size-3.5" />}
        value={
          metrics?.pool_saturation_percent == null
            ? null
            : formatPercent(metrics.pool_saturation_percent)
        }
        caption={
          pools.length ? (
            <span title={`of ${maxVms} VMs in all; per pool: ${poolsCaption(pools)}`}>
              {poolsCaption(pools)}
            </span>
          ) : maxVms !== null ? (
            `of ${maxVms} VMs in use`
          ) : (
            "no data yet"
          )
        }
        trend={
          <Sparkline
            label="Pool saturation"
            values={points.map((p) =>
              p.active_vms === null || !maxVms ? null : (p.active_vms / maxVms) * 100,
            )}
          />
        }
      />
      <StatTile
        testId="stat-success-rate"
        label="Success rate"
        icon={<Timer className="size-3.5" />}
        value={success === null ? null : formatPercent(success)}
        caption={completed !== null ? `${formatNumber(completed)} jobs completed` : "no data yet"}
        trend={
          <div className="flex h-7 items-center">
            <div className="h-1.5 w-full overflow-hidden rounded-full bg-muted">
              <div
                className="h-full rounded-full bg-emerald-500"
                style={{ width: `${success ?? 0}%` }}
              />
            </div>
          </div>
        }
      />
    </div>
  );
}

export function SystemOverview() {
  const { isLoading, error, hasData } = useStatusConnection();
  if (isLoading && !hasData) return <SystemOverviewSkeleton />;
  return (
    <section
      className="flex flex-col gap-3"
      aria-label="System overview"
      data-testid="system-overview"
    >
      {error && !hasData ? (
        <p className="sr-only" role="status">
          System figures unavailable: {error.message}
        </p>
      ) : null}
      <StatTiles />
      <div className={HEALTH_GRID}>
        <GitHubHealthTile />
        <RateLimitTile />
        <LoopTile />
        <PoolsTile />
      </div>
    </section>
  );
}
