"use client";
/**
 * The confirmation dialog shared by every operator action (drain, resume, pause or resize a pool,
 * stop a VM): a title and what will happen, optional extra fields, an optional reason and the
 * operator's name (both recorded with the action's event), the API's error in words, and
 * Cancel / Confirm. The caller runs the action; this only collects the reason.
 */
import { type FormEvent, type ReactNode, useEffect, useId, useState } from "react";
import { Button } from "@/components/ui/button";
import {
  Dialog,
  DialogClose,
  DialogContent,
  DialogDescription,
  DialogTitle,
} from "@/components/ui/dialog";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { getActor, setActor } from "@/lib/api/token";

export interface OperatorDialogProps {
  open: boolean;
  onOpenChange: (open: boolean) => void;
  title: string;
  description: ReactNode;
  confirmLabel: string;
  pendingLabel: string;
  destructive?: boolean;
  pending: boolean;
  /** The failed attempt's message, in words; null when there is none. */
  error: string | null;
  onConfirm: (reason: string) => void;
  /** Extra fields above the reason (a pool's limits). */
  children?: ReactNode;
  /** Disables Confirm (the extra fields are invalid). */
  confirmDisabled?: boolean;
  /** Extra buttons beside Confirm, e.g. "Stop anyway"; given the reason typed so far. */
  extraActions?: (reason: string) => ReactNode;
  testId?: string;
}

export function OperatorDialog({
  open,
  onOpenChange,
  title,
  description,
  confirmLabel,
  pendingLabel,
  destructive = false,
  pending,
  error,
  onConfirm,
  children,
  confirmDisabled = false,
  extraActions,
  testId,
}: OperatorDialogProps) {
  const id = useId();
  const [reason, setReason] = useState("");
  const [actor, setActorValue] = useState("");

  // A fresh form on every opening; the name is remembered for this tab.
  useEffect(() => {
    if (open) {
      setReason("");
      setActorValue(getActor() ?? "");
    }
  }, [open]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (pending || confirmDisabled) return;
    onConfirm(reason.trim());
  };

  return (
    <Dialog open={open} onOpenChange={(next) => (pending && !next ? null : onOpenChange(next))}>
      <DialogContent data-testid={testId} aria-describedby={`${id}-description`}>
        <form onSubmit={submit} className="flex flex-col gap-4" aria-label={title}>
          <div className="flex flex-col gap-1">
            <DialogTitle>{title}</DialogTitle>
            <DialogDescription id={`${id}-description`}>{description}</DialogDescription>
          </div>
          {children}
          <div className="flex flex-col gap-1">
            <Label htmlFor={`${id}-reason`}>Reason (optional, recorded)</Label>
            <Input
              id={`${id}-reason`}
              name="reason"
              autoComplete="off"
              maxLength={500}
              placeholder="e.g. host maintenance"
              value={reason}
              autoFocus={!children}
              onChange={(e) => setReason(e.target.value)}
            />
          </div>
          <div className="flex flex-col gap-1">
            <Label htmlFor={`${id}-actor`}>Your name (optional, kept for this tab)</Label>
            <Input
              id={`${id}-actor`}
              name="actor"
              autoComplete="nickname"
              maxLength={64}
              placeholder="recorded as who did it"
              value={actor}
              onChange={(e) => {
                setActorValue(e.target.value);
                setActor(e.target.value);
              }}
            />
          </div>
          {error ? (
            <p
              className="rounded-md border border-red-500/30 bg-red-500/10 px-3 py-2 text-xs text-red-300"
              role="alert"
              data-testid="operator-error"
            >
              {error}
            </p>
          ) : null}
          <div className="flex flex-wrap justify-end gap-2">
            <DialogClose asChild>
              <Button type="button" variant="ghost" disabled={pending}>
                Cancel
              </Button>
            </DialogClose>
            {extraActions?.(reason.trim())}
            <Button
              type="submit"
              variant={destructive ? "destructive" : "default"}
              disabled={pending || confirmDisabled}
            >
              {pending ? pendingLabel : confirmLabel}
            </Button>
          </div>
        </form>
      </DialogContent>
    </Dialog>
  );
}
