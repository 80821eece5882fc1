"use client";
/**
 * SimulatorControl: in simulate mode, queue a fake GitHub job (labels, duration, conclusion)
 * through `POST /api/simulator/jobs`. Shown only when the backend says `simulate: true`.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Plus } from "lucide-react";
import { type FormEvent, useId, useState } from "react";
import { Button } from "@/components/ui/button";
import {
  Dialog,
  DialogContent,
  DialogDescription,
  DialogTitle,
  DialogTrigger,
} from "@/components/ui/dialog";
import { Input, NativeSelect } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { api } from "@/lib/api/client";
import { queryKeys } from "@/lib/api/queries";
import type { Conclusion, SimulatedJobRequest, SimulatedJobResponse } from "@/lib/api/types";

const CONCLUSIONS: readonly Conclusion[] = ["success", "failure", "cancelled", "timed_out"];

export function parseLabels(text: string): string[] | undefined {
  const labels = text
    .split(",")
    .map((label) => label.trim())
    .filter(Boolean);
  return labels.length ? labels : undefined;
}

export function SimulatorForm({
  onQueued,
  idPrefix,
}: {
  onQueued?: (job: SimulatedJobResponse) => void;
  idPrefix?: string;
}) {
  const queryClient = useQueryClient();
  const generated = useId();
  const id = idPrefix ?? generated;
  const [labels, setLabels] = useState("");
  const [duration, setDuration] = useState("10");
  const [conclusion, setConclusion] = useState<Conclusion>("success");
  const mutation = useMutation({
    mutationFn: (request: SimulatedJobRequest) => api.simulateJob(request),
    onSuccess: (job) => {
      void queryClient.invalidateQueries({ queryKey: queryKeys.status });
      void queryClient.invalidateQueries({ queryKey: ["jobs"] });
      onQueued?.(job);
    },
  });
  const durationValue = Number(duration);
  const durationValid =
    duration.trim() !== "" &&
    Number.isFinite(durationValue) &&
    durationValue >= 0 &&
    durationValue <= 86_400;

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!durationValid) return;
    const request: SimulatedJobRequest = { duration_seconds: durationValue, conclusion };
    const parsed = parseLabels(labels);
    if (parsed) request.labels = parsed;
    mutation.mutate(request);
  };

  return (
    <form onSubmit={submit} className="flex flex-col gap-3" aria-label="Queue a simulated job">
      <div className="flex flex-col gap-1">
        <Label htmlFor={`${id}-labels`}>Labels (comma separated)</Label>
        <Input
          id={`${id}-labels`}
          name="labels"
          placeholder="empty: the first pool's labels"
          value={labels}
          onChange={(e) => setLabels(e.target.value)}
          autoComplete="off"
        />
      </div>
      <div className="grid grid-cols-2 gap-3">
        <div className="flex flex-col gap-1">
          <Label htmlFor={`${id}-duration`}>Duration (seconds)</Label>
          <Input
            id={`${id}-duration`}
            name="duration_seconds"
            type="number"
            min={0}
            max={86400}
            step="any"
            value={duration}
            aria-invalid={!durationValid}
            onChange={(e) => setDuration(e.target.value)}
          />
        </div>
        <div className="flex flex-col gap-1">
          <Label htmlFor={`${id}-conclusion`}>Conclusion</Label>
          <NativeSelect
            id={`${id}-conclusion`}
            name="conclusion"
            value={conclusion}
            onChange={(e) => setConclusion(e.target.value as Conclusion)}
          >
            {CONCLUSIONS.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </NativeSelect>
        </div>
      </div>
      <div className="flex items-center justify-between gap-3">
        <p className="min-h-5 text-xs" aria-live="polite">
          {mutation.isError ? (
            <span className="text-red-400">Could not queue: {mutation.error.message}</span>
          ) : mutation.isSuccess ? (
            <span className="text-emerald-400">
              Queued job #{mutation.data.id} ({mutation.data.labels.join(", ")})
            </span>
          ) : !durationValid ? (
            <span className="text-amber-400">Duration must be 0 to 86400 seconds.</span>
          ) : null}
        </p>
        <Button type="submit" disabled={mutation.isPending || !durationValid}>
          {mutation.isPending ? "Queueing…" : "Queue job"}
        </Button>
      </div>
    </form>
  );
}

export function SimulatorControl() {
  const [open, setOpen] = useState(false);
  const [lastQueued, setLastQueued] = useState<SimulatedJobResponse | null>(null);
  return (
    <div className="flex items-center gap-2">
      <span className="hidden text-xs text-muted-foreground lg:inline" aria-live="polite">
        {lastQueued ? `Queued job #${lastQueued.id}` : ""}
      </span>
      <Dialog open={open} onOpenChange={setOpen}>
        <DialogTrigger asChild>
          <Button size="sm" data-testid="open-simulator">
            <Plus /> Queue a job
          </Button>
        </DialogTrigger>
        <DialogContent>
          <div className="mb-4 flex flex-col gap-1">
            <DialogTitle>Queue a simulated job</DialogTitle>
            <DialogDescription>
              The simulator plays GitHub: the job is queued, a VM boots for it, runs it for the
              given time and ends with the chosen conclusion.
            </DialogDescription>
          </div>
          <SimulatorForm
            idPrefix="sim"
            onQueued={(job) => {
              setLastQueued(job);
              setOpen(false);
            }}
          />
        </DialogContent>
      </Dialog>
    </div>
  );
}
