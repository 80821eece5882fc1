"use client";
/**
 * UsagePanel: VM-hours, vCPU-hours and cost per repository over the last 7 days (UTC), from
 * `GET /api/usage?group_by=repository` (the server's default range), with a link to the same
 * rows as CSV (`GET /api/usage.csv`). VMs that ran no job count for their scope as `(idle)`;
 * cost is vCPU-hours × the server's `usage.cost_per_vcpu_hour` (shown as "—" when unset).
 */
import { queryOptions, useQuery } from "@tanstack/react-query";
import { AlertTriangle, Download } from "lucide-react";
import type { ReactNode } from "react";
import { NoData } from "@/components/NoData";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Skeleton } from "@/components/ui/skeleton";
import { apiUrl, client, unwrap } from "@/lib/api/client";
import { retryOnce } from "@/lib/api/queries";
import type { components } from "@/lib/api/schema";
import { getToken } from "@/lib/api/token";
import { formatNumber } from "@/lib/format";

export type UsageResponse = components["schemas"]["UsageResponse"];

export const USAGE_GROUP_BY = "repository" as const;

/** Per-repository usage of the last 7 days (the server's default range). */
export const usageQueryOptions = () =>
  queryOptions({
    queryKey: ["usage", USAGE_GROUP_BY] as const,
    queryFn: ({ signal }) =>
      unwrap(client.GET("/api/usage", { params: { query: { group_by: USAGE_GROUP_BY } }, signal })),
    retry: retryOnce,
    refetchInterval: 60_000,
  });

/** The CSV of the same range and grouping; a link cannot send headers, so the token rides along. */
export function usageCsvUrl(usage: Pick<UsageResponse, "since" | "until">): string {
  const query = new URLSearchParams({
    since: usage.since,
    until: usage.until,
    group_by: USAGE_GROUP_BY,
  });
  const token = getToken();
  if (token) query.set("access_token", token);
  return apiUrl(`/api/usage.csv?${query.toString()}`);
}

const hours = (seconds: number) => formatNumber(seconds / 3600, 1);

function Cost({ value, priced }: { value: number; priced: boolean }) {
  if (!priced) return <NoData hint="no price set: usage.cost_per_vcpu_hour" />;
  return <>{formatNumber(value, 2)}</>;
}

function UsageSkeleton() {
  return (
    <div className="flex flex-col gap-2" data-testid="usage-skeleton" aria-busy="true">
      {Array.from({ length: 4 }, (_, i) => (
        <Skeleton key={i} className="h-5 w-full" />
      ))}
    </div>
  );
}

function UsageTable({ usage }: { usage: UsageResponse }) {
  const priced = usage.cost_per_vcpu_hour > 0;
  const cell = "px-2 py-1.5 text-right tabular-nums";
  return (
    <table className="w-full text-sm" data-testid="usage-table">
      <thead className="text-xs text-muted-foreground">
        <tr className="border-b border-border">
          <th scope="col" className="px-2 py-1.5 text-left font-medium">
            Repository
          </th>
          <th scope="col" className={`${cell} font-medium`}>
            VM-hours
          </th>
          <th scope="col" className={`${cell} font-medium`}>
            vCPU-hours
          </th>
          <th scope="col" className={`${cell} font-medium`}>
            Cost
          </th>
        </tr>
      </thead>
      <tbody>
        {usage.rows.map((row) => (
          <tr key={row.repository ?? ""} className="border-b border-border/50">
            <th scope="row" className="px-2 py-1.5 text-left font-mono text-xs font-normal">
              {row.repository}
            </th>
            <td className={cell}>{hours(row.vm_seconds)}</td>
            <td className={cell}>{hours(row.vcpu_seconds)}</td>
            <td className={cell}>
              <Cost value={row.cost} priced={priced} />
            </td>
          </tr>
        ))}
      </tbody>
      <tfoot className="font-medium">
        <tr>
          <th scope="row" className="px-2 py-1.5 text-left">
            Total
          </th>
          <td className={cell}>{hours(usage.totals.vm_seconds)}</td>
          <td className={cell}>{hours(usage.totals.vcpu_seconds)}</td>
          <td className={cell}>
            <Cost value={usage.totals.cost} priced={priced} />
          </td>
        </tr>
      </tfoot>
    </table>
  );
}

export function UsagePanel() {
  const query = useQuery(usageQueryOptions());
  const usage = query.data;

  let body: ReactNode;
  if (query.isPending) {
    body = <UsageSkeleton />;
  } else if (query.isError && !usage) {
    body = (
      <div className="flex flex-col items-center gap-1 py-6 text-sm" role="alert">
        <AlertTriangle className="size-5 text-red-400" aria-hidden="true" />
        <p className="font-medium">Could not load usage</p>
        <p className="text-xs text-muted-foreground">{query.error?.message}</p>
      </div>
    );
  } else if (!usage || usage.rows.length === 0) {
    body = (
      <p className="py-6 text-center text-xs text-muted-foreground">
        No VM usage in the last 7 days
      </p>
    );
  } else {
    body = <UsageTable usage={usage} />;
  }

  return (
    <Card aria-labelledby="usage-title" data-testid="usage-panel">
      <CardHeader>
        <div className="flex flex-col gap-0.5">
          <CardTitle id="usage-title">Usage</CardTitle>
          <CardDescription>
            {usage ? `${usage.since} – ${usage.until} (UTC), per repository` : "last 7 days"}
          </CardDescription>
        </div>
        {usage ? (
          <a
            href={usageCsvUrl(usage)}
            download
            className="flex items-center gap-1 text-xs text-muted-foreground underline-offset-4 hover:text-foreground hover:underline"
          >
            <Download className="size-3.5" aria-hidden="true" />
            CSV
          </a>
        ) : null}
      </CardHeader>
      <CardContent>{body}</CardContent>
    </Card>
  );
}
