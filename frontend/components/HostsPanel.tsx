"use client";
/**
 * HostsPanel: the hosts VMs run on (`GET /api/hosts`, refreshed every 3 s): per host its state,
 * what its VMs reserve of its capacity, VM count, heartbeat age and versions, with Cordon / Drain
 * / Uncordon (`HostsPanelActions.tsx`). On one box the list holds the in-process host only, which
 * has no actions (the header's Drain stops new VMs there).
 */
import { useQuery } from "@tanstack/react-query";
import { AlertTriangle } from "lucide-react";
import type { ReactNode } from "react";
import { type HostList, hostsQueryOptions } from "@/components/HostsPanelQuery";
import { HostRow } from "@/components/HostsPanelRow";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Skeleton } from "@/components/ui/skeleton";
import { useNow } from "@/hooks/useNow";
import { ApiError } from "@/lib/api/client";

/** "2 hosts · 1 up · 1 down · placement spread · lease 4s". */
export function hostsSummary(list: HostList): string {
  const counts = new Map<string, number>();
  for (const host of list.hosts) counts.set(host.state, (counts.get(host.state) ?? 0) + 1);
  const states = [...counts.entries()].map(([state, n]) => `${n} ${state}`);
  const total = `${list.hosts.length} host${list.hosts.length === 1 ? "" : "s"}`;
  return [total, ...states, `placement ${list.placement}`, `lease ${list.lease_seconds}s`].join(
    " · ",
  );
}

function errorText(error: Error): string {
  return error instanceof ApiError && error.detail ? error.detail : error.message;
}

/**
 * The body's least height: the skeleton and a one-host table (one box) both fit it, so the
 * widgets below do not move when the list arrives.
 */
export const HOSTS_BODY = "min-h-[5.5rem]";

const HEADINGS = ["Host", "State", "vCPUs", "Memory", "VMs", "Heartbeat", "Versions", ""] as const;

function HostsTable({ list, fetchedAtMs }: { list: HostList; fetchedAtMs: number }) {
  const nowMs = useNow(1_000);
  return (
    <div className="overflow-x-auto">
      <table className="w-full text-sm" data-testid="hosts-table">
        <thead className="text-xs text-muted-foreground">
          <tr className="border-b border-border">
            {HEADINGS.map((heading, i) => (
              <th
                key={i}
                scope="col"
                className={`px-2 py-1.5 font-medium ${heading === "VMs" ? "text-right" : "text-left"}`}
              >
                {heading || <span className="sr-only">Actions</span>}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {list.hosts.map((host) => (
            <HostRow key={host.name} host={host} nowMs={nowMs} fetchedAtMs={fetchedAtMs} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function HostsPanel() {
  const query = useQuery(hostsQueryOptions());
  const list = query.data;

  let body: ReactNode;
  if (query.isPending) {
    body = (
      <div className="flex flex-col gap-2" data-testid="hosts-skeleton" aria-busy="true">
        {Array.from({ length: 2 }, (_, i) => (
          <Skeleton key={i} className="h-8 w-full" />
        ))}
      </div>
    );
  } else if (query.isError && !list) {
    body = (
      <div className="flex flex-col items-center gap-1 py-6 text-sm" role="alert">
        <AlertTriangle className="size-5 text-red-400" aria-hidden="true" />
        <p className="font-medium">Could not load hosts</p>
        <p className="text-xs text-muted-foreground">{errorText(query.error)}</p>
      </div>
    );
  } else if (!list || list.hosts.length === 0) {
    body = (
      <p className="py-6 text-center text-xs text-muted-foreground">
        No hosts yet: add one with `blacksmith-mini host add NAME`, then start its agent
      </p>
    );
  } else {
    body = (
      <>
        <HostsTable list={list} fetchedAtMs={query.dataUpdatedAt || Date.now()} />
        {query.isError ? (
          <p className="mt-2 text-xs text-amber-400" role="alert">
            Refresh failed, showing the last list: {errorText(query.error)}
          </p>
        ) : null}
      </>
    );
  }

  return (
    <Card aria-labelledby="hosts-title" data-testid="hosts-panel">
      <CardHeader>
        <div className="flex flex-col gap-0.5">
          <CardTitle id="hosts-title">Hosts</CardTitle>
          <CardDescription data-testid="hosts-summary">
            {list ? hostsSummary(list) : "where VMs run"}
          </CardDescription>
        </div>
      </CardHeader>
      <CardContent className="pt-2">
        <div className={HOSTS_BODY}>{body}</div>
      </CardContent>
    </Card>
  );
}
