"use client";
/**
 * LoopTile: the health of the reconcile loop (the driver): stuck, erroring, healthy or starting,
 * when it last ticked and how long that took, the tick count and the last error.
 */
import { Activity } from "lucide-react";
import type { ReactNode } from "react";
import { HealthTile } from "@/components/HealthTile";
import { Badge } from "@/components/ui/badge";
import { useNow } from "@/hooks/useNow";
import { useStatusSelector } from "@/hooks/useStatusStream";
import { formatAgo, formatNumber } from "@/lib/format";

export function LoopTile() {
  const loop = useStatusSelector((s) => s.loop);
  const now = useNow(1_000);
  let badge: ReactNode = <Badge variant="outline">no data</Badge>;
  if (loop?.stuck) badge = <Badge variant="danger">stuck</Badge>;
  else if (loop?.last_error) badge = <Badge variant="warning">errors</Badge>;
  else if (loop?.last_tick_at) badge = <Badge variant="success">healthy</Badge>;
  else if (loop) badge = <Badge variant="outline">starting</Badge>;
  return (
    <HealthTile
      title="Reconcile loop"
      icon={<Activity className="size-3.5" />}
      badge={badge}
      testId="loop-health"
    >
      <span>
        Last tick:{" "}
        <span className="text-foreground">
          {loop?.last_tick_at ? formatAgo(loop.last_tick_at * 1000, now) : "never"}
        </span>
        {loop?.last_tick_duration_ms != null
          ? ` · took ${formatNumber(loop.last_tick_duration_ms, 0)} ms`
          : ""}
      </span>
      <span>{formatNumber(loop?.ticks ?? null)} ticks</span>
      {loop?.last_error ? (
        <span className="truncate text-red-400" title={loop.last_error}>
          {loop.last_error}
        </span>
      ) : null}
    </HealthTile>
  );
}
