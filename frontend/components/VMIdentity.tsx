"use client";
/**
 * VMIdentity: a list of VMs to pick from and the identity card of the selected one (id, IP,
 * status, pid, pool, labels, size, uptime, its job), with its console tail and recent events. A VM
 * kept after a failed job says until when and how to reach it (`blacksmith-mini ssh <id>`).
 *
 * The live VMs come from the status stream, the recently gone ones from the VM history
 * (`GET /api/vms?include_gone=true`), and the selected VM's console and events from
 * `GET /api/vms/{vm_id}`. With nothing selected, the first live VM is shown.
 */
import { useQuery } from "@tanstack/react-query";
import { AlertTriangle, Server } from "lucide-react";
import { type ReactNode, useEffect, useMemo, useRef, useState } from "react";
import { KeptVmBadge, KeptVmNotice } from "@/components/KeptVm";
import { StopVmControl } from "@/components/StopVmControl";
import { SIZES, VmDetailsSkeleton, VmListSkeleton } from "@/components/skeletons";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { useNow } from "@/hooks/useNow";
import { useStatusConnection, useStatusSelector } from "@/hooks/useStatusStream";
import { goneVmsQueryOptions, vmDetailQueryOptions } from "@/lib/api/queries";
import type { ApiEvent, Vm, VmDetail } from "@/lib/api/types";
import { formatClock, formatDateTime, formatDuration, formatMemory } from "@/lib/format";
import { cn } from "@/lib/utils";
import { defaultVmId, isActive, VM_STATUS_VARIANT, vmListing } from "@/lib/vms";

export interface VMIdentityProps {
  /** The VM picked by the user (`?vm=`); null shows the first live one. */
  selectedVmId: number | null;
  onSelectVm: (vmId: number) => void;
  onSelectJob?: (jobId: number) => void;
}

function VmStatusBadge({ status }: { status: Vm["status"] }) {
  return <Badge variant={VM_STATUS_VARIANT[status]}>{status}</Badge>;
}

function Field({
  label,
  children,
  mono = false,
}: {
  label: string;
  children: ReactNode;
  mono?: boolean;
}) {
  return (
    <div className="flex min-w-0 flex-col">
      <dt className="text-[0.7rem] text-muted-foreground">{label}</dt>
      <dd className={cn("truncate text-sm", mono && "font-mono text-[0.8rem]")}>{children}</dd>
    </div>
  );
}

function VmList({
  vms,
  selectedVmId,
  onSelectVm,
}: {
  vms: readonly Vm[];
  selectedVmId: number | null;
  onSelectVm: (vmId: number) => void;
}) {
  return (
    <ul className="flex flex-col gap-1" aria-label="VMs">
      {vms.map((vm) => {
        const selected = vm.vm_id === selectedVmId;
        return (
          <li key={vm.vm_id}>
            <button
              type="button"
              aria-pressed={selected}
              data-testid="vm-list-item"
              data-vm-id={vm.vm_id}
              onClick={() => onSelectVm(vm.vm_id)}
              className={cn(
                "flex w-full flex-col gap-0.5 rounded-md border border-transparent px-2 py-1.5 text-left outline-none hover:bg-accent/60 focus-visible:ring-2 focus-visible:ring-ring",
                selected && "border-border bg-accent",
                !isActive(vm) && "opacity-60",
              )}
            >
              <span className="flex items-center justify-between gap-1">
                <span className="text-sm font-medium tabular-nums">VM {vm.vm_id}</span>
                <span className="flex items-center gap-1">
                  <KeptVmBadge vm={vm} />
                  <VmStatusBadge status={vm.status} />
                </span>
              </span>
              <span className="truncate font-mono text-[0.7rem] text-muted-foreground">
                {vm.ip ?? "no IP yet"} · {vm.pool}
                {vm.host ? ` · ${vm.host}` : null}
              </span>
            </button>
          </li>
        );
      })}
    </ul>
  );
}

function ConsoleTail({ text }: { text: string }) {
  const ref = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (el && text) el.scrollTop = el.scrollHeight;
  }, [text]);
  return (
    <section aria-label="Console output (end)">
      <pre
        ref={ref}
        data-testid="vm-console"
        // biome-ignore lint/a11y/noNoninteractiveTabindex: scrollable region must be keyboard reachable
        tabIndex={0}
        className="h-36 overflow-auto rounded-md border border-border bg-black/40 p-2 font-mono text-[0.7rem] leading-relaxed whitespace-pre-wrap text-zinc-300 outline-none focus-visible:ring-2 focus-visible:ring-ring"
      >
        {text || "(no console output yet)"}
      </pre>
    </section>
  );
}

function EventList({ events }: { events: readonly ApiEvent[] }) {
  if (events.length === 0) return <p className="text-xs text-muted-foreground">No events yet.</p>;
  return (
    <ol className="flex flex-col gap-0.5 text-xs">
      {[...events]
        .sort((a, b) => b.at - a.at)
        .slice(0, 6)
        .map((event) => (
          <li key={event.id} className="flex gap-2">
            <span className="shrink-0 text-muted-foreground tabular-nums">
              {formatClock(event.at)}
            </span>
            <span className="shrink-0 font-mono text-[0.7rem] text-primary">{event.kind}</span>
            <span className="truncate" title={event.message}>
              {event.message}
            </span>
          </li>
        ))}
    </ol>
  );
}

function VmDetails({
  vm,
  detail,
  fetchedAt,
  onSelectJob,
}: {
  vm: Vm;
  detail: VmDetail | undefined;
  fetchedAt: number;
  onSelectJob?: (jobId: number) => void;
}) {
  const nowMs = useNow(1_000);
  const current: Vm = detail ?? vm;
  const uptime = isActive(current)
    ? current.uptime_seconds + Math.max(0, (nowMs - fetchedAt) / 1000)
    : current.uptime_seconds;
  const [stopNote, setStopNote] = useState<string | null>(null);
  return (
    <div className="flex min-w-0 flex-col gap-3" data-testid="vm-details">
      <div className="flex min-h-7 items-center gap-2">
        <h3 className="shrink-0 text-base font-semibold tabular-nums">VM {current.vm_id}</h3>
        <VmStatusBadge status={current.status} />
        <span
          className="min-w-0 truncate font-mono text-xs text-muted-foreground"
          title={current.name}
        >
          {current.name}
        </span>
        <span className="ml-auto flex shrink-0 items-center gap-2">
          <span className="sr-only" aria-live="polite">
            {stopNote ?? ""}
          </span>
          {isActive(current) ? (
            <StopVmControl
              vm={current}
              onStopped={(stopped) => setStopNote(`Stop requested for VM ${stopped.vm_id}`)}
            />
          ) : null}
        </span>
      </div>
      <dl className="grid grid-cols-2 gap-x-4 gap-y-2 sm:grid-cols-3">
        <Field label="IP" mono>
          {current.ip ?? "—"}
        </Field>
        <Field label="PID" mono>
          {current.pid ?? "—"}
        </Field>
        <Field label="Uptime">{formatDuration(uptime)}</Field>
        <Field label="Pool">{current.pool}</Field>
        <Field label="Size">
          {current.vcpus} vCPU · {formatMemory(current.memory_mib)}
        </Field>
        <Field label="Job">
          {current.job_id !== null ? (
            onSelectJob ? (
              <button
                type="button"
                className="text-primary underline-offset-2 outline-none hover:underline focus-visible:ring-2 focus-visible:ring-ring"
                onClick={() => onSelectJob(current.job_id as number)}
              >
                #{current.job_id}
              </button>
            ) : (
              `#${current.job_id}`
            )
          ) : (
            "none (idle)"
          )}
        </Field>
        <Field label="Started">{formatDateTime(current.start_time)}</Field>
        <Field label="In state since">{formatClock(current.state_since)}</Field>
        <Field label={current.ended_at ? "Ended" : "Deadline"}>
          {current.ended_at
            ? formatClock(current.ended_at)
            : current.deadline
              ? formatClock(current.deadline)
              : "—"}
        </Field>
        {current.host ? (
          <Field label="Host" mono>
            <span data-testid="vm-host">{current.host}</span>
          </Field>
        ) : null}
      </dl>
      <div className="flex flex-wrap items-center gap-1">
        <span className="text-[0.7rem] text-muted-foreground">Labels</span>
        {current.labels.map((label) => (
          <Badge key={label} variant="outline" className="font-mono">
            {label}
          </Badge>
        ))}
        <span
          className="ml-auto truncate text-[0.7rem] text-muted-foreground"
          title={current.scope}
        >
          {current.scope}
        </span>
      </div>
      <KeptVmNotice vm={current} />
      {current.death_reason ? (
        <p className="flex items-center gap-1 text-xs text-amber-400">
          <AlertTriangle className="size-3.5" /> {current.death_reason}
        </p>
      ) : null}
      <ConsoleTail text={detail?.console_tail ?? ""} />
      <EventList events={detail?.events ?? []} />
    </div>
  );
}

export function VMIdentity({ selectedVmId: pickedVmId, onSelectVm, onSelectJob }: VMIdentityProps) {
  const live = useStatusSelector((s) => s.vms);
  const simulate = useStatusSelector((s) => s.simulate) ?? false;
  const { isLoading, error: streamError, hasData } = useStatusConnection();
  const gone = useQuery({ ...goneVmsQueryOptions(), enabled: hasData });
  const vms = useMemo(() => vmListing(live, gone.data), [live, gone.data]);
  const error = hasData ? null : streamError;
  const selectedVmId = pickedVmId ?? defaultVmId(vms);
  const selected = vms.find((vm) => vm.vm_id === selectedVmId) ?? null;
  const detail = useQuery({
    ...vmDetailQueryOptions(selectedVmId ?? -1),
    enabled: selectedVmId !== null,
    // The console tail grows on its own: refresh it while the VM is alive.
    refetchInterval: selected && isActive(selected) ? 3_000 : false,
    placeholderData: (previous) => (previous?.vm_id === selectedVmId ? previous : undefined),
  });
  const activeCount = vms.filter(isActive).length;

  let body: ReactNode;
  if (isLoading && vms.length === 0) {
    body = (
      <div className="grid h-full grid-cols-[9rem_1fr] gap-3">
        <VmListSkeleton />
        <VmDetailsSkeleton />
      </div>
    );
  } else if (vms.length === 0) {
    body = (
      <div className="flex h-full flex-col items-center justify-center gap-2 px-6 text-center">
        <Server className="size-6 text-muted-foreground" />
        <p className="text-sm font-medium">
          {error ? "VM list unavailable" : "No VMs running: queue a job or check GitHub settings"}
        </p>
        <p className="max-w-xs text-xs text-muted-foreground">
          {error
            ? error.message
            : simulate
              ? "Use “Queue a job” at the top right: a VM boots for it within a second or two."
              : "VMs start when GitHub queues a job whose labels match a pool. Check the GitHub tile above for errors."}
        </p>
      </div>
    );
  } else {
    body = (
      <div className="grid h-full min-h-0 grid-cols-[9rem_1fr] gap-3">
        <div className="min-h-0 overflow-y-auto pr-1">
          <VmList vms={vms} selectedVmId={selectedVmId} onSelectVm={onSelectVm} />
        </div>
        <div className="min-h-0 overflow-y-auto">
          {selected ? (
            detail.isPending && !detail.data ? (
              <VmDetails
                vm={selected}
                detail={undefined}
                fetchedAt={Date.now()}
                onSelectJob={onSelectJob}
              />
            ) : (
              <VmDetails
                vm={selected}
                detail={detail.data}
                fetchedAt={detail.dataUpdatedAt || Date.now()}
                onSelectJob={onSelectJob}
              />
            )
          ) : (
            <p className="pt-8 text-center text-sm text-muted-foreground">
              Select a VM to see its details.
            </p>
          )}
          {detail.isError ? (
            <p className="mt-2 text-xs text-red-400" role="alert">
              Could not load VM details: {detail.error.message}
            </p>
          ) : null}
        </div>
      </div>
    );
  }

  return (
    <Card aria-labelledby="vm-identity-title" data-testid="vm-identity">
      <CardHeader>
        <div className="flex flex-col gap-0.5">
          <CardTitle id="vm-identity-title">VM identity</CardTitle>
          <CardDescription>
            {activeCount} active · {vms.length - activeCount} recently gone
          </CardDescription>
        </div>
        {selected && isActive(selected) ? null : activeCount > 0 ? (
          <Button
            variant="ghost"
            size="sm"
            onClick={() => {
              const first = vms.find(isActive);
              if (first) onSelectVm(first.vm_id);
            }}
          >
            Show first active
          </Button>
        ) : null}
      </CardHeader>
      <CardContent className={cn(SIZES.vmBody, "pt-2")}>{body}</CardContent>
    </Card>
  );
}
