"use client";
/**
 * A VM whose job failed and that is kept for `blacksmith-mini ssh` (keep_on_failure_minutes):
 * KeptVmNotice on its identity card (until when, minutes left, the command), KeptVmBadge in the
 * VM list.
 */
import { LifeBuoy } from "lucide-react";
import { Badge } from "@/components/ui/badge";
import { useNow } from "@/hooks/useNow";
import type { Vm } from "@/lib/api/types";
import { formatClock } from "@/lib/format";
import { keptState, sshCommand } from "@/lib/health";

export function KeptVmNotice({ vm }: { vm: Vm }) {
  const now = useNow(1_000);
  const kept = keptState(vm, now);
  if (!kept) return null;
  return (
    <p
      className="flex items-start gap-1 rounded-md border border-amber-500/30 bg-amber-500/10 px-2 py-1 text-xs text-amber-300"
      data-testid="vm-kept"
    >
      <LifeBuoy className="mt-px size-3.5 shrink-0" />
      <span className="min-w-0">
        Job failed: kept until <span className="tabular-nums">{formatClock(kept.until)}</span> (
        {kept.minutesLeft > 0 ? `${kept.minutesLeft} min left` : "time is up"}) —{" "}
        <code className="rounded bg-muted px-1 font-mono text-foreground select-all">
          {sshCommand(vm.vm_id)}
        </code>
      </span>
    </p>
  );
}

export function KeptVmBadge({ vm }: { vm: Vm }) {
  // Whether it is kept only: the minutes left are on the identity card.
  const kept = keptState(vm, 0);
  if (!kept) return null;
  return (
    <Badge
      variant="warning"
      title={`Job failed: kept for ${sshCommand(vm.vm_id)} until ${formatClock(kept.until)}`}
      data-testid="vm-kept-badge"
    >
      kept
    </Badge>
  );
}
