"use client";
/**
 * HostActions: one host's Cordon / Drain / Uncordon buttons (none for the in-process host of one
 * box), each confirmed in the shared operator dialog with an optional reason. The dialog shows
 * the API's `detail` when the action is refused; on success the hosts list is refreshed.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Ban, CirclePlay, LogOut } from "lucide-react";
import { type ReactNode, useState } from "react";
import {
  applyHostChange,
  type Host,
  type HostAction,
  hostActions,
  runHostAction,
} from "@/components/HostsPanelQuery";
import { OperatorDialog } from "@/components/OperatorDialog";
import { Button } from "@/components/ui/button";
import { operatorErrorMessage } from "@/lib/api/client";

interface ActionText {
  label: string;
  icon: ReactNode;
  title: (name: string) => string;
  description: string;
  pending: string;
  destructive: boolean;
}

export const HOST_ACTION_TEXT: Record<HostAction, ActionText> = {
  cordon: {
    label: "Cordon",
    icon: <Ban className="size-3" />,
    title: (name) => `Cordon host ${name}?`,
    description: "No new VMs are placed on it; its running VMs keep running.",
    pending: "Cordoning…",
    destructive: false,
  },
  drain: {
    label: "Drain",
    icon: <LogOut className="size-3" />,
    title: (name) => `Drain host ${name}?`,
    description:
      "No new VMs are placed on it; its idle VMs stop and its busy ones finish their jobs, so it empties.",
    pending: "Draining…",
    destructive: true,
  },
  uncordon: {
    label: "Uncordon",
    icon: <CirclePlay className="size-3" />,
    title: (name) => `Uncordon host ${name}?`,
    description: "It takes new VMs again.",
    pending: "Uncordoning…",
    destructive: false,
  },
};

export function HostActions({ host }: { host: Host }) {
  const queryClient = useQueryClient();
  const [open, setOpen] = useState(false);
  // Fixed when the dialog opens, so a refresh meanwhile cannot change what is confirmed.
  const [action, setAction] = useState<HostAction>("cordon");
  const mutation = useMutation({
    mutationFn: ({ kind, reason }: { kind: HostAction; reason: string }) =>
      runHostAction(host.name, kind, reason),
    onSuccess: (changed) => {
      applyHostChange(queryClient, changed);
      setOpen(false);
    },
  });
  const actions = hostActions(host);
  if (actions.length === 0) return null;
  const text = HOST_ACTION_TEXT[action];

  return (
    <div className="flex justify-end gap-1">
      {actions.map((kind) => (
        <Button
          key={kind}
          size="sm"
          variant="outline"
          className="h-6 px-2 text-[0.7rem]"
          aria-label={`${HOST_ACTION_TEXT[kind].label} host ${host.name}`}
          data-testid={`host-${kind}`}
          onClick={() => {
            mutation.reset();
            setAction(kind);
            setOpen(true);
          }}
        >
          {HOST_ACTION_TEXT[kind].icon}
          {HOST_ACTION_TEXT[kind].label}
        </Button>
      ))}
      <OperatorDialog
        open={open}
        onOpenChange={setOpen}
        testId="host-action-dialog"
        title={text.title(host.name)}
        description={text.description}
        confirmLabel={text.label}
        pendingLabel={text.pending}
        destructive={text.destructive}
        pending={mutation.isPending}
        error={mutation.isError ? operatorErrorMessage(mutation.error) : null}
        onConfirm={(reason) => mutation.mutate({ kind: action, reason })}
      />
    </div>
  );
}
