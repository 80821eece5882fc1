"use client";
/**
 * The "API Connection Error" state: the page stays up with its last data, says how old that data
 * is and how to start the backend, and goes away by itself when the API answers again.
 * `ApiConnectionError` shows it while the status stream is offline; `ApiConnectionErrorNotice` is
 * the notice itself.
 */
import { PlugZap } from "lucide-react";
import { useNow } from "@/hooks/useNow";
import { useStatusConnection } from "@/hooks/useStatusStream";
import { apiBaseUrl } from "@/lib/api/client";
import { formatAgo } from "@/lib/format";

export function ApiConnectionError() {
  const { mode, lastUpdatedAt, error } = useStatusConnection();
  if (mode !== "offline") return null;
  return <ApiConnectionErrorNotice lastUpdatedAt={lastUpdatedAt} error={error} />;
}

export function ApiConnectionErrorNotice({
  lastUpdatedAt,
  error,
}: {
  lastUpdatedAt: number | null;
  error: Error | null;
}) {
  const now = useNow(1_000);
  const base = apiBaseUrl() || (typeof window === "undefined" ? "" : window.location.origin);
  return (
    <section
      role="alert"
      aria-labelledby="api-error-title"
      data-testid="api-connection-error"
      className="flex flex-col gap-2 rounded-xl border border-red-500/40 bg-red-500/10 p-4 sm:flex-row sm:items-start sm:gap-4"
    >
      <PlugZap className="size-6 shrink-0 text-red-400" aria-hidden="true" />
      <div className="flex flex-col gap-1.5 text-sm">
        <h2 id="api-error-title" className="text-base font-semibold text-red-300">
          API Connection Error
        </h2>
        <p>
          The dashboard cannot reach the Blacksmith Mini API at{" "}
          <code className="font-mono">{base}</code>. It keeps retrying and recovers by itself when
          the backend is back.
        </p>
        <p className="text-muted-foreground" data-testid="last-fresh">
          {lastUpdatedAt
            ? `Last fresh data: ${new Date(lastUpdatedAt).toLocaleTimeString("en-GB", { hour12: false })} (${formatAgo(lastUpdatedAt, now)}). The figures below are from then.`
            : "No data received yet."}
        </p>
        <p>
          Start the backend with{" "}
          <code className="rounded bg-black/30 px-1 font-mono">make run</code> or{" "}
          <code className="rounded bg-black/30 px-1 font-mono">
            uv run blacksmith-mini up --simulate
          </code>
          .
        </p>
        {error ? <p className="font-mono text-xs text-muted-foreground">{error.message}</p> : null}
      </div>
    </section>
  );
}
