/** Small, pure formatters shared by the widgets. Times from the API are epoch seconds. */

export const NO_DATA = "—";

export function formatNumber(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || Number.isNaN(value)) return NO_DATA;
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

export function formatPercent(value: number | null | undefined): string {
  if (value === null || value === undefined) return NO_DATA;
  return `${formatNumber(value, value < 10 && value % 1 !== 0 ? 1 : 0)}%`;
}

/** "42s", "3m 05s", "2h 04m", "3d 4h". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return NO_DATA;
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.round(s)}s`;
  const totalSeconds = Math.round(s);
  const minutes = Math.floor(totalSeconds / 60);
  if (minutes < 60) return `${minutes}m ${String(totalSeconds % 60).padStart(2, "0")}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${String(minutes % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** A countdown in whole seconds: "40s", "2m 05s", "0s" once due; `now` in epoch milliseconds. */
export function formatCountdown(untilEpochSeconds: number, nowMs: number): string {
  const seconds = Math.max(0, Math.ceil(untilEpochSeconds - nowMs / 1000));
  return seconds < 60 ? `${seconds}s` : formatDuration(seconds);
}

/** "5s ago", "3m ago"; `now` and `then` in epoch milliseconds. */
export function formatAgo(thenMs: number | null | undefined, nowMs: number): string {
  if (thenMs === null || thenMs === undefined) return "never";
  const seconds = Math.max(0, (nowMs - thenMs) / 1000);
  if (seconds < 2) return "just now";
  return `${formatDuration(seconds).replace(/\.\d/, "")} ago`;
}

export function formatClock(epochSeconds: number | null | undefined): string {
  if (epochSeconds === null || epochSeconds === undefined) return NO_DATA;
  return new Date(epochSeconds * 1000).toLocaleTimeString("en-GB", { hour12: false });
}

export function formatDateTime(epochSeconds: number | null | undefined): string {
  if (epochSeconds === null || epochSeconds === undefined) return NO_DATA;
  const d = new Date(epochSeconds * 1000);
  return `${d.toLocaleDateString("en-CA")} ${d.toLocaleTimeString("en-GB", { hour12: false })}`;
}

export function formatMemory(mib: number): string {
  return mib >= 1024 ? `${formatNumber(mib / 1024, mib % 1024 === 0 ? 0 : 1)} GiB` : `${mib} MiB`;
}
