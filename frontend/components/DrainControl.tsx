"use client";
/**
 * DrainControl: the header's Drain / Resume toggle (`POST /api/control/drain` and `/resume`),
 * confirmed in a small dialog with an optional reason. DrainingBanner: the notice shown while the
 * control plane is draining. Both read `draining` from the status stream.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { CirclePause, CirclePlay, OctagonPause } from "lucide-react";
import { useState } from "react";
import { OperatorDialog } from "@/components/OperatorDialog";
import { Button } from "@/components/ui/button";
import { useStatusSelector } from "@/hooks/useStatusStream";
import { api, operatorErrorMessage } from "@/lib/api/client";
import { applyControlState } from "@/lib/api/queries";

type DrainAction = "drain" | "resume";

export function DrainControl({ disabled = false }: { disabled?: boolean }) {
  // Undefined before the first snapshot: the toggle stays disabled until then.
  const draining = useStatusSelector((s) => s.draining);
  const queryClient = useQueryClient();
  const [open, setOpen] = useState(false);
  // Fixed when the dialog opens, so a snapshot arriving meanwhile cannot flip what is confirmed.
  const [action, setAction] = useState<DrainAction>("drain");
  const mutation = useMutation({
    mutationFn: ({ kind, reason }: { kind: DrainAction; reason: string }) =>
      kind === "drain" ? api.drain({ reason }) : api.resume({ reason }),
    onSuccess: (control) => {
      applyControlState(queryClient, control);
      setOpen(false);
    },
  });

  const next: DrainAction = draining ? "resume" : "drain";
  const openDialog = () => {
    mutation.reset();
    setAction(next);
    setOpen(true);
  };

  return (
    <>
      <Button
        size="sm"
        variant={draining ? "default" : "outline"}
        className="w-[5.75rem]"
        disabled={disabled || draining === undefined}
        onClick={openDialog}
        data-testid="drain-toggle"
        data-draining={draining ? "true" : "false"}
        title={
          draining
            ? "Resume: start VMs for queued jobs again"
            : "Drain: start no new VMs; running jobs finish"
        }
      >
        {draining ? <CirclePlay /> : <CirclePause />}
        {draining ? "Resume" : "Drain"}
      </Button>
      <OperatorDialog
        open={open}
        onOpenChange={setOpen}
        testId="drain-dialog"
        title={action === "drain" ? "Drain the control plane?" : "Resume starting VMs?"}
        description={
          action === "drain"
            ? "No new VMs are started: running jobs finish, idle VMs are stopped and queued jobs wait until you resume."
            : "VMs are started again for queued jobs and warm pools."
        }
        confirmLabel={action === "drain" ? "Drain" : "Resume"}
        pendingLabel={action === "drain" ? "Draining…" : "Resuming…"}
        destructive={action === "drain"}
        pending={mutation.isPending}
        error={mutation.isError ? operatorErrorMessage(mutation.error) : null}
        onConfirm={(reason) => mutation.mutate({ kind: action, reason })}
      />
    </>
  );
}

/** "Draining: no new VMs", shown in the header while draining (no layout shift below it). */
export function DrainingBanner() {
  const draining = useStatusSelector((s) => s.draining);
  if (!draining) return null;
  return (
    <div
      role="status"
      data-testid="draining-banner"
      className="flex h-8 items-center gap-2 rounded-md border border-amber-500/40 bg-amber-500/15 px-3 text-sm font-medium text-amber-300"
    >
      <OctagonPause className="size-4 shrink-0" aria-hidden="true" />
      <span>Draining: no new VMs</span>
      <span className="hidden text-xs font-normal text-amber-300/80 xl:inline">
        running jobs finish; queued jobs wait for Resume
      </span>
    </div>
  );
}
