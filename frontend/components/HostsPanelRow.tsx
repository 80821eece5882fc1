"use client";
/**
 * HostRow: one row of the hosts table: name (and architecture), state badge (a down host in red
 * with its reason and since when), what its VMs reserve of its capacity as bars
 * ("6/16 vCPUs", "12/64 GiB"), its VM count, heartbeat age (ticking between refreshes), versions
 * and its operator actions.
 */
import { HostActions } from "@/components/HostsPanelActions";
import type { Host, HostState } from "@/components/HostsPanelQuery";
import { Badge, type BadgeVariant } from "@/components/ui/badge";
import { formatAgo, formatClock, formatDuration, formatNumber, NO_DATA } from "@/lib/format";
import { cn } from "@/lib/utils";

export const HOST_STATE_VARIANT: Record<HostState, BadgeVariant> = {
  up: "success",
  cordoned: "warning",
  draining: "info",
  down: "danger",
  revoked: "outline",
};

/** "12" or "1.5": memory in GiB, for "12/64 GiB". */
function gib(mib: number): string {
  const value = mib / 1024;
  return formatNumber(value, Number.isInteger(value) ? 0 : 1);
}

function UsageBar({ used, total, text }: { used: number; total: number; text: string }) {
  const share = total > 0 ? used / total : 0;
  return (
    <div className="flex min-w-[6.5rem] flex-col gap-0.5">
      <span className="text-xs tabular-nums whitespace-nowrap">{text}</span>
      <div className="h-1.5 w-full overflow-hidden rounded-full bg-muted" aria-hidden="true">
        <div
          className={cn(
            "h-full rounded-full",
            share > 1 ? "bg-amber-400" : share >= 0.9 ? "bg-amber-500/80" : "bg-primary/70",
          )}
          style={{ width: `${Math.min(100, Math.round(share * 100))}%` }}
        />
      </div>
    </div>
  );
}

function Resources({ host }: { host: Host }) {
  const { capacity, reserved } = host;
  if (!capacity) {
    return (
      <td className="px-2 py-1.5 text-xs text-muted-foreground" colSpan={2}>
        no report yet
      </td>
    );
  }
  return (
    <>
      <td className="px-2 py-1.5" data-testid="host-vcpus">
        <UsageBar
          used={reserved.vcpus}
          total={capacity.vcpus}
          text={`${reserved.vcpus}/${capacity.vcpus} vCPUs`}
        />
      </td>
      <td className="px-2 py-1.5" data-testid="host-memory">
        <UsageBar
          used={reserved.memory_mib}
          total={capacity.memory_mib}
          text={`${gib(reserved.memory_mib)}/${gib(capacity.memory_mib)} GiB`}
        />
      </td>
    </>
  );
}

function StateCell({ host, nowMs }: { host: Host; nowMs: number }) {
  const down = host.state === "down";
  return (
    <td className="px-2 py-1.5 align-top">
      <div className="flex flex-col gap-0.5">
        <span>
          <Badge variant={HOST_STATE_VARIANT[host.state]} data-testid="host-state">
            {host.state}
          </Badge>
        </span>
        {down ? (
          <span className="text-[0.7rem] text-red-400" data-testid="host-down-reason">
            {host.down_reason ?? "no heartbeat within the lease"}
            {host.down_since !== null
              ? ` · since ${formatClock(host.down_since)} (${formatAgo(host.down_since * 1000, nowMs)})`
              : null}
          </span>
        ) : host.state === "revoked" ? (
          <span className="text-[0.7rem] text-muted-foreground">token revoked</span>
        ) : null}
      </div>
    </td>
  );
}

function Heartbeat({ host, ageSeconds }: { host: Host; ageSeconds: number | null }) {
  if (host.in_process) return <span className="text-muted-foreground">in process</span>;
  if (ageSeconds === null) return <span className="text-muted-foreground">never</span>;
  return (
    <span className={cn(host.state === "down" && "text-red-400")}>
      {formatDuration(ageSeconds).replace(/\.\d/, "")} ago
    </span>
  );
}

function Versions({ versions }: { versions: Host["versions"] }) {
  const entries = Object.entries(versions);
  if (entries.length === 0) return <span className="text-muted-foreground">{NO_DATA}</span>;
  const all = entries.map(([name, version]) => `${name} ${version}`).join(" · ");
  return (
    <span className="block max-w-[16rem] truncate font-mono text-[0.7rem]" title={all}>
      {all}
    </span>
  );
}

export function HostRow({
  host,
  nowMs,
  fetchedAtMs,
}: {
  host: Host;
  nowMs: number;
  /** When the list was fetched (epoch ms): the heartbeat age grows from there. */
  fetchedAtMs: number;
}) {
  const age =
    host.heartbeat_age_seconds === null
      ? null
      : host.heartbeat_age_seconds + Math.max(0, (nowMs - fetchedAtMs) / 1000);
  return (
    <tr
      className="border-b border-border/50"
      data-testid="host-row"
      data-host={host.name}
      data-state={host.state}
    >
      <th scope="row" className="px-2 py-1.5 text-left align-top font-normal">
        <span className="block font-mono text-xs font-medium">{host.name}</span>
        <span className="text-[0.7rem] text-muted-foreground">
          {[host.arch, ...host.drivers].filter(Boolean).join(" · ") || NO_DATA}
        </span>
      </th>
      <StateCell host={host} nowMs={nowMs} />
      <Resources host={host} />
      <td className="px-2 py-1.5 text-right text-xs tabular-nums" data-testid="host-vms">
        {host.vms}
      </td>
      <td className="px-2 py-1.5 text-xs tabular-nums whitespace-nowrap">
        <Heartbeat host={host} ageSeconds={age} />
      </td>
      <td className="px-2 py-1.5">
        <Versions versions={host.versions} />
      </td>
      <td className="px-2 py-1.5">
        <HostActions host={host} />
      </td>
    </tr>
  );
}
