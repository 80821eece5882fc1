/**
 * Every loading placeholder of the dashboard, in one file. Each skeleton has exactly the size of
 * the widget it stands for (the heights below are shared with the widgets), so nothing jumps when
 * data arrives.
 */

import type { ReactNode } from "react";
import { Card, CardContent, CardHeader } from "@/components/ui/card";
import { Skeleton } from "@/components/ui/skeleton";
import { cn } from "@/lib/utils";

export const SIZES = {
  statTile: "h-[8.25rem]",
  healthTile: "h-[6.75rem]",
  // A 1080p wall screen (>= 1800 px wide) shows the whole page without scrolling.
  timelineBody: "h-[30rem] min-[1800px]:h-[23rem]",
  vmBody: "h-[30rem] min-[1800px]:h-[23rem]",
  chart: "h-44 min-[1800px]:h-40",
} as const;

export const STAT_TILE_COUNT = 6;
export const HEALTH_TILE_COUNT = 3;
export const CHART_COUNT = 4;

export const OVERVIEW_GRID = "grid grid-cols-2 gap-3 md:grid-cols-3 xl:grid-cols-6";
export const HEALTH_GRID = "grid grid-cols-1 gap-3 md:grid-cols-3 xl:grid-cols-5";
/** The pools tile: its own row beside nothing on medium screens, two columns of five on wide. */
export const POOLS_TILE_SPAN = "md:col-span-3 xl:col-span-2";
export const CHART_GRID = "grid grid-cols-1 gap-3 md:grid-cols-2 2xl:grid-cols-4";

export function StatTileSkeleton() {
  return (
    <Card className={cn(SIZES.statTile, "justify-between p-3")}>
      <Skeleton className="h-3 w-20" />
      <Skeleton className="h-7 w-16" />
      <Skeleton className="h-7 w-full" />
    </Card>
  );
}

export function HealthTileSkeleton({ className }: { className?: string }) {
  return (
    <Card className={cn(SIZES.healthTile, "gap-2 p-3", className)}>
      <Skeleton className="h-3 w-24" />
      <Skeleton className="h-5 w-32" />
      <Skeleton className="h-3 w-40" />
    </Card>
  );
}

export function SystemOverviewSkeleton() {
  return (
    <div className="flex flex-col gap-3" data-testid="system-overview-skeleton" aria-busy="true">
      <div className={OVERVIEW_GRID}>
        {Array.from({ length: STAT_TILE_COUNT }, (_, i) => (
          <StatTileSkeleton key={i} />
        ))}
      </div>
      <div className={HEALTH_GRID}>
        {Array.from({ length: HEALTH_TILE_COUNT }, (_, i) => (
          <HealthTileSkeleton key={i} />
        ))}
        <HealthTileSkeleton className={POOLS_TILE_SPAN} />
      </div>
    </div>
  );
}

export function TimelineRowsSkeleton({ rows = 8 }: { rows?: number }) {
  return (
    <div className="flex flex-col gap-2 p-4" data-testid="timeline-skeleton" aria-busy="true">
      {Array.from({ length: rows }, (_, i) => (
        <div key={i} className="flex h-11 items-center gap-3">
          <div className="flex w-56 shrink-0 flex-col gap-1.5">
            <Skeleton className="h-3.5 w-40" />
            <Skeleton className="h-3 w-28" />
          </div>
          <Skeleton className="h-4" style={{ width: `${30 + ((i * 37) % 55)}%` }} />
        </div>
      ))}
    </div>
  );
}

export function VmDetailsSkeleton() {
  return (
    <div className="flex flex-col gap-3" data-testid="vm-details-skeleton" aria-busy="true">
      <Skeleton className="h-6 w-48" />
      <div className="grid grid-cols-2 gap-3">
        {Array.from({ length: 8 }, (_, i) => (
          <div key={i} className="flex flex-col gap-1">
            <Skeleton className="h-3 w-16" />
            <Skeleton className="h-4 w-28" />
          </div>
        ))}
      </div>
      <Skeleton className="h-36 w-full" />
    </div>
  );
}

export function VmListSkeleton() {
  return (
    <div className="flex flex-col gap-1.5" aria-busy="true">
      {Array.from({ length: 6 }, (_, i) => (
        <Skeleton key={i} className="h-12 w-full" />
      ))}
    </div>
  );
}

export function CardFrameSkeleton({
  bodyClass,
  children,
}: {
  bodyClass: string;
  children: ReactNode;
}) {
  return (
    <Card>
      <CardHeader>
        <Skeleton className="h-4 w-36" />
        <Skeleton className="h-6 w-40" />
      </CardHeader>
      <CardContent className={bodyClass}>{children}</CardContent>
    </Card>
  );
}

export function ChartSkeleton() {
  return (
    <div className={cn(SIZES.chart, "flex flex-col gap-2")} aria-busy="true">
      <Skeleton className="h-3 w-28" />
      <Skeleton className="w-full flex-1" />
    </div>
  );
}

export function HistoryChartsSkeleton() {
  return (
    <div className={CHART_GRID} data-testid="history-skeleton">
      {Array.from({ length: CHART_COUNT }, (_, i) => (
        <ChartSkeleton key={i} />
      ))}
    </div>
  );
}

export function JobDetailsSkeleton() {
  return (
    <div className="flex flex-col gap-4 p-5" data-testid="job-details-skeleton" aria-busy="true">
      <Skeleton className="h-6 w-2/3" />
      <Skeleton className="h-4 w-1/2" />
      <div className="grid grid-cols-2 gap-3">
        {Array.from({ length: 6 }, (_, i) => (
          <Skeleton key={i} className="h-10" />
        ))}
      </div>
      <Skeleton className="h-40 w-full" />
      <Skeleton className="h-32 w-full" />
    </div>
  );
}
