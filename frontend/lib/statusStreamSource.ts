/**
 * The status stream as `useVMData` opens it: an EventSource-shaped adapter over
 * `GET /api/events` that turns `snapshot` and `delta` events into whole statuses.
 *
 * - `snapshot`: the status to hold. `delta`: applied to the held status (`lib/statusDelta.ts`).
 *   Each new status goes to `onStatus` (which stores it, in the query cache), and the next delta
 *   builds on what `onStatus` returns (the stored value: unchanged parts keep their identity).
 * - A delta that does not start from the held version (a gap, or out of order) is not applied:
 *   the adapter closes its connection and opens a new one without `last_event_id`, so the
 *   server starts again with a snapshot. After three such resyncs in a row (no delta applied
 *   in between) it reports an error instead, and `useVMData` backs off and polls.
 * - The held status outlives one connection: `useVMData` reconnects (after an error) through
 *   the same factory, which asks to resume with `?last_event_id=<held version>`; the server
 *   sends only the missed deltas, or a snapshot when it no longer has them.
 * - Full `status` events (an older server) pass through to `useVMData` unchanged.
 */
import { isStatusResponse } from "@/hooks/useVMData";
import type { StatusResponse } from "@/lib/api/types";
import { applyStatusDelta, parseStatusDelta } from "@/lib/statusDelta";

export const MAX_RESYNCS = 3;

export interface StatusStreamOptions {
  /** Opens the underlying event source. */
  create: (url: string) => EventSource;
  /** Stores a new status; returns what was stored (the next delta is applied to it). */
  onStatus: (status: StatusResponse) => StatusResponse;
}

type Listener = (event: MessageEvent) => void;

interface Held {
  status: StatusResponse | null;
  resyncs: number;
}

function parseSnapshot(raw: unknown): StatusResponse | null {
  if (typeof raw !== "string") return null;
  try {
    const value: unknown = JSON.parse(raw);
    return isStatusResponse(value) ? value : null;
  } catch {
    return null;
  }
}

export function resumeUrl(url: string, version: number | null): string {
  if (version === null) return url;
  return `${url}${url.includes("?") ? "&" : "?"}last_event_id=${version}`;
}

class StatusStreamSource {
  onopen: ((event: Event) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onmessage: Listener | null = null;
  private readonly listeners = new Map<string, Set<Listener>>();
  private inner: EventSource;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly held: Held,
    private readonly options: StatusStreamOptions,
  ) {
    this.inner = this.open(resumeUrl(url, held.status?.snapshot_version ?? null));
  }

  get readyState(): number {
    return this.inner.readyState;
  }

  addEventListener(type: string, listener: Listener): void {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)?.add(listener);
  }

  removeEventListener(type: string, listener: Listener): void {
    this.listeners.get(type)?.delete(listener);
  }

  close(): void {
    this.closed = true;
    this.inner.close();
  }

  private open(url: string): EventSource {
    const source = this.options.create(url);
    const current = () => !this.closed && this.inner === source;
    source.onopen = (event) => {
      if (current()) this.onopen?.(event);
    };
    source.onerror = (event) => {
      if (current()) this.onerror?.(event);
    };
    source.addEventListener("snapshot", (event: MessageEvent) => {
      if (!current()) return;
      const status = parseSnapshot(event.data);
      if (status) this.held.status = this.options.onStatus(status);
    });
    source.addEventListener("delta", (event: MessageEvent) => {
      if (!current()) return;
      const delta = parseStatusDelta(event.data);
      if (!delta) return; // a malformed event is ignored, as useVMData does
      const next = this.held.status && applyStatusDelta(this.held.status, delta);
      if (!next) {
        this.resync();
        return;
      }
      this.held.resyncs = 0;
      this.held.status = this.options.onStatus(next);
    });
    source.addEventListener("status", (event: MessageEvent) => {
      if (!current()) return;
      for (const listener of this.listeners.get("status") ?? []) listener(event);
    });
    return source;
  }

  /** Start again from a snapshot: the held version is not the one the stream continues. */
  private resync(): void {
    this.held.status = null;
    this.held.resyncs += 1;
    if (this.held.resyncs > MAX_RESYNCS) {
      this.held.resyncs = 0;
      this.onerror?.(new Event("error"));
      return;
    }
    this.inner.close();
    this.inner = this.open(this.url);
  }
}

/**
 * An event-source factory for `useVMData` that applies the stream's deltas; the held status is
 * shared by every connection it opens (so a reconnect resumes where the last one stopped).
 */
export function statusStreamFactory(options: StatusStreamOptions): (url: string) => EventSource {
  const held: Held = { status: null, resyncs: 0 };
  // The adapter has what useVMData uses of an EventSource (handlers, listeners, close).
  return (url) => new StatusStreamSource(url, held, options) as unknown as EventSource;
}
