"use client";
/**
 * HistoryCharts: active VMs, queue depth, spawn and death rates, and queued→started latency
 * (p50/p95) over 1h, 24h or 7d, from `GET /api/history`.
 */
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { AlertTriangle } from "lucide-react";
import { type ReactNode, useState } from "react";
import {
  Area,
  AreaChart,
  CartesianGrid,
  Line,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";
import { CHART_GRID, HistoryChartsSkeleton, SIZES } from "@/components/skeletons";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Segmented } from "@/components/ui/segmented";
import { historyQueryOptions } from "@/lib/api/queries";
import type { HistoryPoint, HistoryWindow } from "@/lib/api/types";
import { formatDuration, formatNumber } from "@/lib/format";
import { cn } from "@/lib/utils";

const WINDOWS: readonly { value: HistoryWindow; label: string }[] = [
  { value: "1h", label: "1h" },
  { value: "24h", label: "24h" },
  { value: "7d", label: "7d" },
];

interface Row {
  at: number;
  active_vms: number | null;
  queued_jobs: number | null;
  spawns_per_min: number | null;
  deaths_per_min: number | null;
  p50: number | null;
  p95: number | null;
}

export function toRows(points: readonly HistoryPoint[], stepSeconds: number): Row[] {
  const minutes = Math.max(stepSeconds / 60, 1 / 60);
  const rate = (v: number | null) => (v === null ? null : v / minutes);
  return points.map((p) => ({
    at: p.at * 1000,
    active_vms: p.active_vms,
    queued_jobs: p.queued_jobs,
    spawns_per_min: rate(p.spawns),
    deaths_per_min: rate(p.deaths),
    p50: p.queue_to_start_p50,
    p95: p.queue_to_start_p95,
  }));
}

function tickFormatter(window: HistoryWindow) {
  return (ms: number) => {
    const d = new Date(ms);
    if (window === "7d") return d.toLocaleDateString("en-CA").slice(5);
    return d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hour12: false });
  };
}

const AXIS = {
  stroke: "var(--muted-foreground)",
  fontSize: 11,
  tickLine: false,
  axisLine: false,
} as const;
const TOOLTIP_STYLE = {
  contentStyle: {
    background: "var(--popover)",
    border: "1px solid var(--border)",
    borderRadius: 8,
    fontSize: 12,
  },
  labelStyle: { color: "var(--muted-foreground)" },
} as const;

interface Series {
  key: keyof Row;
  name: string;
  color: string;
}

function Chart({
  title,
  rows,
  series,
  window,
  kind,
  format,
  axisFormat = (v: number) => formatNumber(v, Number.isInteger(v) ? 0 : 1),
  integer = false,
}: {
  title: string;
  rows: Row[];
  series: Series[];
  window: HistoryWindow;
  kind: "area" | "line";
  format: (v: number) => string;
  axisFormat?: (v: number) => string;
  integer?: boolean;
}) {
  const hasData = rows.some((row) => series.some((s) => row[s.key] !== null));
  const xTick = tickFormatter(window);
  const common = {
    data: rows,
    margin: { top: 4, right: 8, bottom: 0, left: -12 },
  };
  const axes = (
    <>
      <CartesianGrid stroke="var(--border)" vertical={false} />
      <XAxis
        dataKey="at"
        type="number"
        scale="time"
        domain={["dataMin", "dataMax"]}
        tickFormatter={xTick}
        {...AXIS}
        minTickGap={24}
      />
      <YAxis
        {...AXIS}
        width={44}
        allowDecimals={!integer}
        tickFormatter={(v: number) => axisFormat(v)}
      />
      <Tooltip
        {...TOOLTIP_STYLE}
        labelFormatter={(ms) => new Date(Number(ms)).toLocaleString("en-GB", { hour12: false })}
        formatter={(value, name) => [
          value === null || value === undefined ? "—" : format(Number(value)),
          name,
        ]}
      />
    </>
  );
  return (
    <figure className={cn(SIZES.chart, "flex flex-col gap-1")} data-testid="history-chart">
      <figcaption className="flex items-center gap-3 text-xs font-medium text-muted-foreground">
        {title}
        {series.length > 1
          ? series.map((s) => (
              <span key={s.key} className="flex items-center gap-1 font-normal">
                <span
                  className="inline-block h-0.5 w-3"
                  style={{ background: s.color }}
                  aria-hidden="true"
                />
                {s.name}
              </span>
            ))
          : null}
      </figcaption>
      {hasData ? (
        <div className="min-h-0 flex-1">
          <ResponsiveContainer
            width="100%"
            height="100%"
            initialDimension={{ width: 320, height: 150 }}
          >
            {kind === "area" ? (
              <AreaChart {...common}>
                {axes}
                {series.map((s) => (
                  <Area
                    key={s.key}
                    type="linear"
                    dataKey={s.key}
                    name={s.name}
                    stroke={s.color}
                    fill={s.color}
                    fillOpacity={0.15}
                    strokeWidth={1.5}
                    isAnimationActive={false}
                    connectNulls={false}
                  />
                ))}
              </AreaChart>
            ) : (
              <LineChart {...common}>
                {axes}
                {series.map((s) => (
                  <Line
                    key={s.key}
                    type="linear"
                    dataKey={s.key}
                    name={s.name}
                    stroke={s.color}
                    strokeWidth={1.5}
                    dot={rows.length <= 30 ? { r: 2 } : false}
                    isAnimationActive={false}
                    connectNulls={false}
                  />
                ))}
              </LineChart>
            )}
          </ResponsiveContainer>
        </div>
      ) : (
        <div className="flex flex-1 items-center justify-center rounded-md border border-dashed border-border text-xs text-muted-foreground">
          No samples in this window yet
        </div>
      )}
    </figure>
  );
}

export function HistoryCharts() {
  const [window, setWindow] = useState<HistoryWindow>("1h");
  const query = useQuery({ ...historyQueryOptions(window), placeholderData: keepPreviousData });
  const rows = query.data ? toRows(query.data.points, query.data.step_seconds) : [];
  const count = (v: number) => formatNumber(v, Number.isInteger(v) ? 0 : 1);

  let body: ReactNode;
  if (query.isPending) {
    body = <HistoryChartsSkeleton />;
  } else if (query.isError && !query.data) {
    body = (
      <div
        className={cn(SIZES.chart, "flex flex-col items-center justify-center gap-1 text-sm")}
        role="alert"
      >
        <AlertTriangle className="size-5 text-red-400" />
        <p className="font-medium">Could not load history</p>
        <p className="text-xs text-muted-foreground">{query.error?.message}</p>
      </div>
    );
  } else {
    body = (
      <div className={CHART_GRID}>
        <Chart
          title="Active VMs"
          rows={rows}
          window={window}
          kind="area"
          format={count}
          integer
          series={[{ key: "active_vms", name: "active VMs", color: "var(--chart-1)" }]}
        />
        <Chart
          title="Queue depth"
          rows={rows}
          window={window}
          kind="area"
          format={count}
          integer
          series={[{ key: "queued_jobs", name: "queued jobs", color: "var(--chart-3)" }]}
        />
        <Chart
          title="Spawns and deaths"
          rows={rows}
          window={window}
          kind="line"
          format={(v) => `${formatNumber(v, 1)}/m`}
          series={[
            { key: "spawns_per_min", name: "spawned", color: "var(--chart-2)" },
            { key: "deaths_per_min", name: "gone", color: "var(--chart-4)" },
          ]}
        />
        <Chart
          title="Queued → started"
          rows={rows}
          window={window}
          kind="line"
          format={(v) => formatDuration(v)}
          axisFormat={(v) => `${formatNumber(v, Number.isInteger(v) ? 0 : 1)}s`}
          series={[
            { key: "p50", name: "p50", color: "var(--chart-1)" },
            { key: "p95", name: "p95", color: "var(--chart-5)" },
          ]}
        />
      </div>
    );
  }

  return (
    <Card aria-labelledby="history-title" data-testid="history-charts">
      <CardHeader>
        <div className="flex flex-col gap-0.5">
          <CardTitle id="history-title">History</CardTitle>
          <CardDescription>
            {query.data
              ? `one sample every ${formatDuration(query.data.step_seconds)}`
              : "loading samples"}
          </CardDescription>
        </div>
        <Segmented label="History window" value={window} options={WINDOWS} onChange={setWindow} />
      </CardHeader>
      <CardContent>{body}</CardContent>
    </Card>
  );
}
