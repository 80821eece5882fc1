/** Pure helpers about VMs: status colours, ordering and the VM list as shown. */
import type { BadgeVariant } from "@/components/ui/badge";
import type { Vm, VmStatus } from "@/lib/api/types";

export const VM_STATUS_VARIANT: Record<VmStatus, BadgeVariant> = {
  pending: "warning",
  booting: "info",
  idle: "secondary",
  busy: "success",
  stopping: "warning",
  gone: "outline",
};

export function isActive(vm: Pick<Vm, "status">): boolean {
  return vm.status !== "gone";
}

/** Most recent first: by when the VM ended (gone) or started (active), then by id. */
export function sortByRecency(vms: readonly Vm[]): Vm[] {
  return [...vms].sort(
    (a, b) => (b.ended_at ?? b.start_time) - (a.ended_at ?? a.start_time) || b.vm_id - a.vm_id,
  );
}

/**
 * The VM list as shown: the live VMs of the status stream (newest first), then the gone ones of
 * the VM history (most recently ended first). The two lists are shown one after the other, not
 * merged: a VM the history already calls gone while the stream still has it live is shown once,
 * live, until the next snapshot.
 */
export function vmListing(live: readonly Vm[] | undefined, gone: readonly Vm[] | undefined): Vm[] {
  const liveIds = new Set((live ?? []).map((vm) => vm.vm_id));
  return [
    ...sortByRecency(live ?? []),
    ...sortByRecency((gone ?? []).filter((vm) => !liveIds.has(vm.vm_id))),
  ];
}

export function defaultVmId(vms: readonly Vm[]): number | null {
  return (vms.find(isActive) ?? vms[0])?.vm_id ?? null;
}
