"use client";
/**
 * CachePanel: the co-located Actions cache per repository, from `GET /api/cache/metrics`:
 * entries and bytes stored, hits (restore-key hits included), misses, hit rate, bytes received
 * and served, evictions; the host's stored total against its cap. The counters are since the
 * server started, the stored figures are what is on disk: the rows are the repositories of
 * either. A repository's entries (`GET /api/cache/entries?repository=…`) unfold below its row.
 * With the cache off the route answers `enabled: false` and how to turn it on (an older server:
 * a 404 with the same detail): shown calmly, not as an error.
 */
import { queryOptions, useQuery } from "@tanstack/react-query";
import { AlertTriangle, ChevronDown, ChevronRight, PowerOff } from "lucide-react";
import { Fragment, type ReactNode, useState } from "react";
import { NoData } from "@/components/NoData";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Skeleton } from "@/components/ui/skeleton";
import { ApiError, client, unwrap } from "@/lib/api/client";
import { retryOnce } from "@/lib/api/queries";
import type { components } from "@/lib/api/schema";
import { formatNumber, formatPercent } from "@/lib/format";

export type CacheMetricsResponse = components["schemas"]["CacheMetricsResponse"];
export type CacheRepositoryCounters = components["schemas"]["CacheRepositoryCounters"];
export type CacheEntriesResponse = components["schemas"]["CacheEntriesResponse"];

/** What the server says when the cache is off (its 404 detail is shown when it sends one). */
export const CACHE_OFF_HINT =
  "the Actions cache is off: set [cache] enabled = true (BLACKSMITH_CACHE__ENABLED=true); " +
  "it is on by default with the firecracker driver";

export const cacheMetricsQueryOptions = () =>
  queryOptions({
    queryKey: ["cache", "metrics"] as const,
    queryFn: ({ signal }) => unwrap(client.GET("/api/cache/metrics", { signal })),
    retry: retryOnce,
    refetchInterval: 30_000,
  });

export const cacheEntriesQueryOptions = (repository: string) =>
  queryOptions({
    queryKey: ["cache", "entries", repository] as const,
    queryFn: ({ signal }) =>
      unwrap(client.GET("/api/cache/entries", { params: { query: { repository } }, signal })),
    retry: retryOnce,
    refetchInterval: 30_000,
  });

/** The route's 404: the server runs without the cache. */
export function isCacheOff(error: unknown): error is ApiError {
  return error instanceof ApiError && error.status === 404;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/** "512 B", "1.5 KiB", "10 GiB": binary units, one decimal unless whole. */
export function formatBytes(bytes: number): string {
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const rounded = Math.round(value * 10) / 10;
  return `${formatNumber(rounded, Number.isInteger(rounded) ? 0 : 1)} ${UNITS[unit]}`;
}

export interface CacheRow {
  repository: string;
  entries: number;
  storedBytes: number;
  /** Null for a repository with stored entries but no call since the server started. */
  counters: CacheRepositoryCounters | null;
}

/** One row per repository with counters or stored entries, sorted by name. */
export function cacheRows(metrics: CacheMetricsResponse): CacheRow[] {
  const names = new Set([
    ...Object.keys(metrics.repositories),
    ...Object.keys(metrics.usage_bytes),
    ...Object.keys(metrics.entry_counts),
  ]);
  return [...names].sort().map((repository) => ({
    repository,
    entries: metrics.entry_counts[repository] ?? 0,
    storedBytes: metrics.usage_bytes[repository] ?? 0,
    counters: metrics.repositories[repository] ?? null,
  }));
}

const NO_CALLS = "no cache calls since the server started";

function hitsText(counters: CacheRepositoryCounters): string {
  const hits = formatNumber(counters.hits);
  if (counters.restore_key_hits === 0) return hits;
  return `${hits} (${formatNumber(counters.restore_key_hits)} via restore key)`;
}

function evictionsText(counters: CacheRepositoryCounters): string {
  const evictions = formatNumber(counters.evictions);
  if (counters.evictions === 0) return evictions;
  return `${evictions} (${formatBytes(counters.evicted_bytes)})`;
}

function HitRate({ rate }: { rate: number | null }) {
  if (rate === null) return <NoData hint="no lookups yet" />;
  return <>{formatPercent(rate * 100)}</>;
}

function CacheSkeleton() {
  return (
    <div className="flex flex-col gap-2" data-testid="cache-skeleton" aria-busy="true">
      {Array.from({ length: 4 }, (_, i) => (
        <Skeleton key={i} className="h-5 w-full" />
      ))}
    </div>
  );
}

function CacheOff({ detail }: { detail: string | null }) {
  return (
    <div className="flex flex-col items-center gap-1 py-6 text-sm" data-testid="cache-off">
      <PowerOff className="size-5 text-muted-foreground" aria-hidden="true" />
      <p className="font-medium">The Actions cache is off on this server</p>
      <p className="max-w-prose text-center text-xs text-muted-foreground">
        {detail ?? CACHE_OFF_HINT}
      </p>
    </div>
  );
}

function CacheEntries({ repository, colSpan }: { repository: string; colSpan: number }) {
  const query = useQuery(cacheEntriesQueryOptions(repository));
  let body: ReactNode;
  if (query.isPending) {
    body = <Skeleton className="h-5 w-full" />;
  } else if (query.isError && !query.data) {
    body = (
      <p className="text-xs text-red-400" role="alert">
        Could not load entries: {query.error?.message}
      </p>
    );
  } else if (!query.data || query.data.entries.length === 0) {
    body = <p className="text-xs text-muted-foreground">No entries stored</p>;
  } else {
    body = (
      <ul className="flex flex-col gap-1 text-xs">
        {query.data.entries.map((entry) => (
          <li key={entry.id} className="flex flex-wrap items-baseline gap-x-3">
            <span className="font-mono break-all">{entry.key}</span>
            <span className="text-muted-foreground">{entry.ref}</span>
            <span className="tabular-nums">{formatBytes(entry.size_in_bytes)}</span>
            <span className="text-muted-foreground">last used {entry.last_accessed_at}</span>
          </li>
        ))}
        {query.data.total_count > query.data.entries.length ? (
          <li className="text-muted-foreground">
            and {formatNumber(query.data.total_count - query.data.entries.length)} more
          </li>
        ) : null}
      </ul>
    );
  }
  return (
    <tr
      className="border-b border-border/50 bg-muted/30"
      data-testid={`cache-entries-${repository}`}
    >
      <td colSpan={colSpan} className="px-6 py-2">
        {body}
      </td>
    </tr>
  );
}

const COLUMNS = ["Entries", "Stored", "Hits", "Misses", "Hit rate", "In", "Out", "Evictions"];

function CacheRowView({ row }: { row: CacheRow }) {
  const [open, setOpen] = useState(false);
  const cell = "px-2 py-1.5 text-right tabular-nums";
  const { counters } = row;
  const counted = (text: ReactNode) => (counters ? text : <NoData hint={NO_CALLS} />);
  return (
    <Fragment>
      <tr className="border-b border-border/50" data-testid={`cache-row-${row.repository}`}>
        <th scope="row" className="px-2 py-1.5 text-left font-mono text-xs font-normal">
          {row.entries > 0 ? (
            <button
              type="button"
              aria-expanded={open}
              aria-label={`${open ? "Hide" : "Show"} the cache entries of ${row.repository}`}
              onClick={() => setOpen((was) => !was)}
              className="flex items-center gap-1 rounded-sm outline-none hover:text-foreground focus-visible:ring-2 focus-visible:ring-ring"
            >
              {open ? (
                <ChevronDown className="size-3.5" aria-hidden="true" />
              ) : (
                <ChevronRight className="size-3.5" aria-hidden="true" />
              )}
              {row.repository}
            </button>
          ) : (
            <span className="pl-[1.125rem]">{row.repository}</span>
          )}
        </th>
        <td className={cell}>{formatNumber(row.entries)}</td>
        <td className={cell}>{formatBytes(row.storedBytes)}</td>
        <td className={cell}>{counted(counters && hitsText(counters))}</td>
        <td className={cell}>{counted(counters && formatNumber(counters.misses))}</td>
        <td className={cell}>{counted(counters && <HitRate rate={counters.hit_rate} />)}</td>
        <td className={cell}>{counted(counters && formatBytes(counters.bytes_in))}</td>
        <td className={cell}>{counted(counters && formatBytes(counters.bytes_out))}</td>
        <td className={cell}>{counted(counters && evictionsText(counters))}</td>
      </tr>
      {open ? <CacheEntries repository={row.repository} colSpan={COLUMNS.length + 1} /> : null}
    </Fragment>
  );
}

function CacheTable({ rows }: { rows: CacheRow[] }) {
  const cell = "px-2 py-1.5 text-right font-medium";
  return (
    <div className="overflow-x-auto">
      <table className="w-full text-sm" data-testid="cache-table">
        <thead className="text-xs text-muted-foreground">
          <tr className="border-b border-border">
            <th scope="col" className="px-2 py-1.5 text-left font-medium">
              Repository
            </th>
            {COLUMNS.map((name) => (
              <th key={name} scope="col" className={cell}>
                {name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <CacheRowView key={row.repository} row={row} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** "1.5 GiB of 100 GiB stored on this host · 10 GiB per repository". */
export function cacheSummary(metrics: CacheMetricsResponse): string {
  const { host_bytes, limits } = metrics;
  return (
    `${formatBytes(host_bytes)} of ${formatBytes(limits.host_bytes)} stored on this host · ` +
    `${formatBytes(limits.repository_bytes)} per repository`
  );
}

export function CachePanel() {
  const query = useQuery(cacheMetricsQueryOptions());
  const offError = isCacheOff(query.error) ? query.error : null;
  const offAnswer = query.data?.enabled === false ? query.data : null;
  const metrics = offError || offAnswer ? undefined : query.data;

  let body: ReactNode;
  let description: ReactNode = "per repository, since the server started";
  if (query.isPending) {
    body = <CacheSkeleton />;
  } else if (offAnswer || offError) {
    body = <CacheOff detail={offAnswer?.detail ?? offError?.detail ?? null} />;
    description = "off";
  } else if (query.isError && !metrics) {
    body = (
      <div className="flex flex-col items-center gap-1 py-6 text-sm" role="alert">
        <AlertTriangle className="size-5 text-red-400" aria-hidden="true" />
        <p className="font-medium">Could not load the cache metrics</p>
        <p className="text-xs text-muted-foreground">{query.error?.message}</p>
      </div>
    );
  } else {
    const rows = metrics ? cacheRows(metrics) : [];
    body =
      rows.length === 0 ? (
        <p className="py-6 text-center text-xs text-muted-foreground">No cache entries yet</p>
      ) : (
        <CacheTable rows={rows} />
      );
  }
  if (metrics) description = <span data-testid="cache-summary">{cacheSummary(metrics)}</span>;

  return (
    <Card aria-labelledby="cache-title" data-testid="cache-panel">
      <CardHeader>
        <div className="flex flex-col gap-0.5">
          <CardTitle id="cache-title">Actions cache</CardTitle>
          <CardDescription>{description}</CardDescription>
        </div>
      </CardHeader>
      <CardContent>{body}</CardContent>
    </Card>
  );
}
