"use client";
/**
 * StopVmControl: "Stop VM" for an active VM (`POST /api/vms/{id}/stop`). A busy VM is refused
 * with 409 (its job would fail): the dialog shows the API's reason and offers "Stop anyway (job
 * fails)", which sends the same request with `force: true`.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Power } from "lucide-react";
import { useState } from "react";
import { OperatorDialog } from "@/components/OperatorDialog";
import { Button } from "@/components/ui/button";
import { ApiError, api, operatorErrorMessage } from "@/lib/api/client";
import { refreshAfterVmChange } from "@/lib/api/queries";
import type { Vm } from "@/lib/api/types";

export function isConflict(error: unknown): boolean {
  return error instanceof ApiError && error.status === 409;
}

export function StopVmControl({ vm, onStopped }: { vm: Vm; onStopped?: (vm: Vm) => void }) {
  const queryClient = useQueryClient();
  const [open, setOpen] = useState(false);
  const mutation = useMutation({
    mutationFn: ({ reason, force }: { reason: string; force: boolean }) =>
      api.stopVm(vm.vm_id, { reason, force }),
    onSuccess: (stopped) => {
      refreshAfterVmChange(queryClient, vm.vm_id);
      setOpen(false);
      onStopped?.(stopped);
    },
  });
  const conflict = mutation.isError && isConflict(mutation.error);
  const busy = vm.status === "busy";

  return (
    <>
      <Button
        size="sm"
        variant="outline"
        className="h-7 border-red-500/40 px-2.5 text-red-300 hover:bg-red-500/15 hover:text-red-200"
        onClick={() => {
          mutation.reset();
          setOpen(true);
        }}
        data-testid="stop-vm"
      >
        <Power className="size-3.5" /> Stop VM
      </Button>
      <OperatorDialog
        open={open}
        onOpenChange={setOpen}
        testId="stop-vm-dialog"
        title={`Stop VM ${vm.vm_id}?`}
        description={
          busy
            ? `It is running job #${vm.job_id ?? "?"}: the server refuses unless you force it, and forcing fails the job.`
            : "The VM is shut down and its runner removed; the pool starts another if it needs one."
        }
        confirmLabel="Stop VM"
        pendingLabel="Stopping…"
        destructive
        pending={mutation.isPending}
        error={mutation.isError ? operatorErrorMessage(mutation.error) : null}
        onConfirm={(reason) => mutation.mutate({ reason, force: false })}
        confirmDisabled={conflict}
        extraActions={(reason) =>
          conflict ? (
            <Button
              type="button"
              variant="destructive"
              disabled={mutation.isPending}
              onClick={() => mutation.mutate({ reason, force: true })}
              data-testid="stop-vm-force"
            >
              Stop anyway (job fails)
            </Button>
          ) : null
        }
      />
    </>
  );
}
