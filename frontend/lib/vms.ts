/** Pure helpers about VMs: status colours, ordering and the merged VM list. */
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

/** Active VMs first (newest first), then the gone ones (most recently ended first). */
export function mergeVms(
  fromStatus: readonly Vm[] | undefined,
  listed: readonly Vm[] | undefined,
): Vm[] {
  const byId = new Map<number, Vm>();
  for (const vm of listed ?? []) byId.set(vm.vm_id, vm);
  for (const vm of fromStatus ?? []) byId.set(vm.vm_id, vm);
  return [...byId.values()].sort((a, b) => {
    const activeDiff = Number(isActive(b)) - Number(isActive(a));
    if (activeDiff !== 0) return activeDiff;
    return (b.ended_at ?? b.start_time) - (a.ended_at ?? a.start_time) || b.vm_id - a.vm_id;
  });
}

export function defaultVmId(vms: readonly Vm[]): number | null {
  return (vms.find(isActive) ?? vms[0])?.vm_id ?? null;
}
