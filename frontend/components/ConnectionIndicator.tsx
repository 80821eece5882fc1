"use client";
import { useNow } from "@/hooks/useNow";
import { useStatusConnection } from "@/hooks/useStatusStream";
import type { ConnectionMode } from "@/hooks/useVMData";
import { formatAgo } from "@/lib/format";
import { cn } from "@/lib/utils";

const MODE: Record<ConnectionMode, { label: string; dot: string; hint: string }> = {
  live: {
    label: "Live",
    dot: "bg-emerald-400",
    hint: "Receiving updates as they happen (event stream).",
  },
  polling: {
    label: "Polling",
    dot: "bg-amber-400",
    hint: "Event stream down: refreshing every 3 s while it reconnects.",
  },
  offline: { label: "Offline", dot: "bg-red-500", hint: "The API is unreachable: retrying." },
};

/** Live / Polling / Offline and the age of the data, from the status stream. */
export function ConnectionIndicator() {
  const { mode, lastUpdatedAt } = useStatusConnection();
  const now = useNow(1_000);
  const m = MODE[mode];
  return (
    <div
      className="flex items-center gap-2 rounded-md border border-border px-2 py-1 text-xs"
      title={m.hint}
      data-testid="connection-indicator"
      data-mode={mode}
    >
      <span className="relative flex size-2">
        {mode === "live" ? (
          <span
            className={cn(
              "absolute inline-flex size-full animate-ping rounded-full opacity-60",
              m.dot,
            )}
          />
        ) : null}
        <span className={cn("relative inline-flex size-2 rounded-full", m.dot)} />
      </span>
      <span className="font-medium">{m.label}</span>
      <span className="text-muted-foreground tabular-nums" suppressHydrationWarning>
        {lastUpdatedAt ? `updated ${formatAgo(lastUpdatedAt, now)}` : "waiting for data"}
      </span>
    </div>
  );
}
