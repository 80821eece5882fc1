"use client";
/**
 * PoolsTile: every pool with its limits, queue and VM counts, a Pause / Resume button
 * (`POST /api/pools/{name}/pause|resume`) and a limits editor for min_idle / max_vms
 * (`PATCH /api/pools/{name}`), the idle VMs it keeps (a pool with `max_idle` shows the target
 * its demand sets, the reason in its tooltip), and a warning under a pool whose VM starts keep failing (back-off,
 * reason with its fix, countdown to the next try). It has the height of the health tiles beside it, so the page does
 * not move; more pools than fit scroll inside it.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Layers, Pause, Play, SlidersHorizontal } from "lucide-react";
import { useId, useState } from "react";
import { OperatorDialog } from "@/components/OperatorDialog";
import { PoolBackoffWarning } from "@/components/PoolBackoff";
import { POOLS_TILE_SPAN, SIZES } from "@/components/skeletons";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { useStatusSelector } from "@/hooks/useStatusStream";
import { api, operatorErrorMessage } from "@/lib/api/client";
import { applyControlState } from "@/lib/api/queries";
import type { Pool, PoolLimitsRequest } from "@/lib/api/types";
import { poolBackoff } from "@/lib/health";
import { cn } from "@/lib/utils";

/** The server's bounds (PoolLimitsRequest). */
export const MAX_MIN_IDLE = 10_000;
export const MAX_MAX_VMS = 100_000;

export interface PoolCounts {
  active: number;
  busy: number;
  idle: number;
  starting: number;
}

export function poolCounts(pool: Pool): PoolCounts {
  const by = pool.vms_by_status;
  const n = (status: string) => by[status] ?? 0;
  const active = Object.entries(by)
    .filter(([status]) => status !== "gone")
    .reduce((sum, [, count]) => sum + count, 0);
  return { active, busy: n("busy"), idle: n("idle"), starting: n("pending") + n("booting") };
}

export interface LimitErrors {
  minIdle?: string;
  maxVms?: string;
}

function parseCount(text: string, max: number): { value: number | null; error?: string } {
  const trimmed = text.trim();
  if (trimmed === "") return { value: null, error: "Required." };
  if (!/^\d+$/.test(trimmed)) return { value: null, error: "A whole number, 0 or more." };
  const value = Number(trimmed);
  if (value > max) return { value: null, error: `At most ${max.toLocaleString("en-US")}.` };
  return { value };
}

/** Checks the two fields as typed; the errors by field, empty when both are fine. */
export function validateLimits(minIdle: string, maxVms: string): LimitErrors {
  const min = parseCount(minIdle, MAX_MIN_IDLE);
  const max = parseCount(maxVms, MAX_MAX_VMS);
  const errors: LimitErrors = {};
  if (min.error) errors.minIdle = min.error;
  if (max.error) errors.maxVms = max.error;
  if (min.value !== null && max.value !== null && min.value > max.value) {
    errors.minIdle = "Cannot exceed the maximum.";
  }
  return errors;
}

function PoolPauseControl({ pool }: { pool: Pool }) {
  const queryClient = useQueryClient();
  const [open, setOpen] = useState(false);
  const [pause, setPause] = useState(true);
  const mutation = useMutation({
    mutationFn: ({ paused, reason }: { paused: boolean; reason: string }) =>
      paused ? api.pausePool(pool.name, { reason }) : api.resumePool(pool.name, { reason }),
    onSuccess: (control) => {
      applyControlState(queryClient, control);
      setOpen(false);
    },
  });
  return (
    <>
      <Button
        size="sm"
        variant="outline"
        className="h-6 w-[4.75rem] px-2 text-[0.7rem]"
        onClick={() => {
          mutation.reset();
          setPause(!pool.paused);
          setOpen(true);
        }}
        aria-label={`${pool.paused ? "Resume" : "Pause"} pool ${pool.name}`}
        data-testid="pool-pause-toggle"
      >
        {pool.paused ? <Play className="size-3" /> : <Pause className="size-3" />}
        {pool.paused ? "Resume" : "Pause"}
      </Button>
      <OperatorDialog
        open={open}
        onOpenChange={setOpen}
        testId="pool-pause-dialog"
        title={pause ? `Pause pool ${pool.name}?` : `Resume pool ${pool.name}?`}
        description={
          pause
            ? "No new VMs start in this pool: its running jobs finish, its queued jobs wait and its warm VMs are not replaced."
            : "VMs start again in this pool for its queued jobs and its warm minimum."
        }
        confirmLabel={pause ? "Pause pool" : "Resume pool"}
        pendingLabel={pause ? "Pausing…" : "Resuming…"}
        pending={mutation.isPending}
        error={mutation.isError ? operatorErrorMessage(mutation.error) : null}
        onConfirm={(reason) => mutation.mutate({ paused: pause, reason })}
      />
    </>
  );
}

function PoolLimitsControl({ pool }: { pool: Pool }) {
  const queryClient = useQueryClient();
  const id = useId();
  const [open, setOpen] = useState(false);
  const [start, setStart] = useState({ minIdle: pool.min_idle, maxVms: pool.max_vms });
  const [minIdle, setMinIdle] = useState(String(pool.min_idle));
  const [maxVms, setMaxVms] = useState(String(pool.max_vms));
  const mutation = useMutation({
    mutationFn: (request: PoolLimitsRequest) => api.setPoolLimits(pool.name, request),
    onSuccess: (control) => {
      applyControlState(queryClient, control);
      setOpen(false);
    },
  });
  const errors = validateLimits(minIdle, maxVms);
  const valid = !errors.minIdle && !errors.maxVms;
  const changed =
    minIdle.trim() !== String(start.minIdle) || maxVms.trim() !== String(start.maxVms);

  const confirm = (reason: string) => {
    // Only what changed: a concurrent change of the other limit is kept.
    const request: PoolLimitsRequest = { reason };
    if (Number(minIdle) !== start.minIdle) request.min_idle = Number(minIdle);
    if (Number(maxVms) !== start.maxVms) request.max_vms = Number(maxVms);
    mutation.mutate(request);
  };

  return (
    <>
      <Button
        size="sm"
        variant="ghost"
        className="h-6 px-2 text-[0.7rem]"
        onClick={() => {
          mutation.reset();
          setStart({ minIdle: pool.min_idle, maxVms: pool.max_vms });
          setMinIdle(String(pool.min_idle));
          setMaxVms(String(pool.max_vms));
          setOpen(true);
        }}
        aria-label={`Edit limits of pool ${pool.name}`}
        data-testid="pool-limits-edit"
      >
        <SlidersHorizontal className="size-3" /> Limits
      </Button>
      <OperatorDialog
        open={open}
        onOpenChange={setOpen}
        testId="pool-limits-dialog"
        title={`Limits of pool ${pool.name}`}
        description="Kept across restarts. The warm minimum is per repository; the maximum counts every VM of the pool."
        confirmLabel="Save"
        pendingLabel="Saving…"
        pending={mutation.isPending}
        confirmDisabled={!valid || !changed}
        error={mutation.isError ? operatorErrorMessage(mutation.error) : null}
        onConfirm={confirm}
      >
        <div className="grid grid-cols-2 gap-3">
          <div className="flex flex-col gap-1">
            <Label htmlFor={`${id}-min`}>Warm minimum (min_idle)</Label>
            <Input
              id={`${id}-min`}
              name="min_idle"
              type="number"
              inputMode="numeric"
              min={0}
              max={MAX_MIN_IDLE}
              step={1}
              autoFocus
              value={minIdle}
              aria-invalid={errors.minIdle ? true : undefined}
              aria-describedby={`${id}-min-error`}
              onChange={(e) => setMinIdle(e.target.value)}
            />
            <span id={`${id}-min-error`} className="min-h-4 text-[0.7rem] text-amber-400">
              {errors.minIdle ?? ""}
            </span>
          </div>
          <div className="flex flex-col gap-1">
            <Label htmlFor={`${id}-max`}>Maximum VMs (max_vms)</Label>
            <Input
              id={`${id}-max`}
              name="max_vms"
              type="number"
              inputMode="numeric"
              min={0}
              max={MAX_MAX_VMS}
              step={1}
              value={maxVms}
              aria-invalid={errors.maxVms ? true : undefined}
              aria-describedby={`${id}-max-error`}
              onChange={(e) => setMaxVms(e.target.value)}
            />
            <span id={`${id}-max-error`} className="min-h-4 text-[0.7rem] text-amber-400">
              {errors.maxVms ?? ""}
            </span>
          </div>
        </div>
      </OperatorDialog>
    </>
  );
}

/** "min idle 2", or for a pool sized from demand "idle target 3 (0–6)". */
export function idleWords(pool: Pool): string {
  const adaptive = pool.max_idle != null && pool.max_idle > pool.min_idle;
  return adaptive
    ? `idle target ${pool.idle_target} (${pool.min_idle}–${pool.max_idle})`
    : `min idle ${pool.min_idle}`;
}

function PoolRow({ pool }: { pool: Pool }) {
  const counts = poolCounts(pool);
  const backoff = poolBackoff(pool);
  const idle = idleWords(pool);
  const idleMinutes = pool.idle_vm_minutes_last_hour;
  const summary = `${counts.active}/${pool.max_vms} VMs · ${idle} (${pool.idle_reason}; ${idleMinutes} idle VM-min in the last hour) · ${pool.queued_jobs} queued · ${counts.busy} busy · ${counts.idle} idle · ${counts.starting} starting`;
  return (
    <li
      className={cn("flex flex-col", backoff && "pb-1")}
      data-testid="pool-row"
      data-pool={pool.name}
      data-paused={pool.paused ? "true" : "false"}
      data-backoff={backoff ? "true" : "false"}
    >
      <div className="flex h-7 items-center gap-2">
        <span className="flex w-24 shrink-0 items-center gap-1.5">
          <span className="truncate font-medium text-foreground" title={pool.labels.join(", ")}>
            {pool.name}
          </span>
          {pool.paused ? <Badge variant="warning">paused</Badge> : null}
        </span>
        <span className="min-w-0 flex-1 truncate tabular-nums" title={summary}>
          <span className="text-foreground">
            {counts.active}/{pool.max_vms}
          </span>{" "}
          VMs ·{" "}
          <span
            data-testid="pool-idle"
            title={`${pool.idle_reason}; ${idleMinutes} idle VM-minutes in the last hour`}
          >
            {idle}
          </span>{" "}
          ·{" "}
          <span className={cn(pool.queued_jobs > 0 && "text-foreground")}>
            {pool.queued_jobs} queued
          </span>{" "}
          · {counts.busy} busy · {counts.idle} idle · {counts.starting} starting
        </span>
        <span className="flex shrink-0 items-center gap-1">
          <PoolPauseControl pool={pool} />
          <PoolLimitsControl pool={pool} />
        </span>
      </div>
      {backoff ? <PoolBackoffWarning pool={pool.name} backoff={backoff} /> : null}
    </li>
  );
}

/** The pools of the status stream (and whether it drains); empty until the first snapshot. */
export function PoolsTile() {
  const pools = useStatusSelector((s) => s.pools);
  const draining = useStatusSelector((s) => s.draining);
  const paused = pools?.filter((pool) => pool.paused).length ?? 0;
  const backingOff = pools?.filter((pool) => poolBackoff(pool) !== null).length ?? 0;
  let badge = <Badge variant="outline">no data</Badge>;
  if (draining) badge = <Badge variant="warning">draining</Badge>;
  else if (backingOff > 0) badge = <Badge variant="danger">{backingOff} backing off</Badge>;
  else if (paused > 0) badge = <Badge variant="warning">{paused} paused</Badge>;
  else if (pools) badge = <Badge variant="success">starting VMs</Badge>;
  return (
    <Card
      className={cn(SIZES.healthTile, POOLS_TILE_SPAN, "gap-1 overflow-hidden p-3")}
      data-testid="pools-panel"
      aria-labelledby="pools-title"
    >
      <div className="flex items-center justify-between gap-2">
        <div className="flex items-center gap-1.5 text-xs text-muted-foreground">
          <Layers className="size-3.5" />
          <h3 className="font-medium" id="pools-title">
            Pools
          </h3>
        </div>
        {badge}
      </div>
      {pools && pools.length > 0 ? (
        <ul className="-mr-1 min-h-0 overflow-y-auto pr-1 text-xs text-muted-foreground">
          {pools.map((pool) => (
            <PoolRow key={pool.name} pool={pool} />
          ))}
        </ul>
      ) : (
        <p className="text-xs text-muted-foreground">{pools ? "No pools configured." : ""}</p>
      )}
    </Card>
  );
}
