/**
 * The one place that talks HTTP to the Blacksmith Mini API.
 *
 * Base URL: `NEXT_PUBLIC_API_URL` when set at build or dev time; otherwise the same origin in the
 * exported build (the backend serves it) and http://localhost:8000 under `next dev`.
 */
import { getToken, markAuthRequired } from "./token";
import type {
  HistoryResponse,
  HistoryWindow,
  JobDetail,
  JobListResponse,
  SimulatedJobRequest,
  SimulatedJobResponse,
  StatusResponse,
  VmDetail,
  VmListResponse,
} from "./types";

export function apiBaseUrl(): string {
  const configured = process.env.NEXT_PUBLIC_API_URL;
  if (configured !== undefined && configured !== "") return configured.replace(/\/+$/, "");
  return process.env.NODE_ENV === "development" ? "http://localhost:8000" : "";
}

export function apiUrl(path: string): string {
  return `${apiBaseUrl()}${path}`;
}

/** The server-sent-events URL; EventSource cannot send headers, so the token goes in the query. */
export function eventsUrl(token: string | null = getToken()): string {
  const url = apiUrl("/api/events");
  return token ? `${url}?access_token=${encodeURIComponent(token)}` : url;
}

export class ApiError extends Error {
  readonly status: number;
  readonly detail: string | null;

  constructor(status: number, detail: string | null, path: string) {
    super(detail ? `${path}: ${status} ${detail}` : `${path}: HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

/** True for errors that mean "the API could not be reached", not "it answered with an error". */
export function isNetworkError(error: unknown): boolean {
  return error instanceof Error && !(error instanceof ApiError);
}

export function isUnauthorized(error: unknown): boolean {
  return error instanceof ApiError && error.status === 401;
}

async function readDetail(response: Response): Promise<string | null> {
  try {
    const body: unknown = await response.json();
    if (body && typeof body === "object" && "detail" in body) {
      const { detail } = body as { detail: unknown };
      return typeof detail === "string" ? detail : JSON.stringify(detail);
    }
  } catch {
    // Not JSON: fall through.
  }
  return null;
}

export async function apiFetch<T>(
  path: string,
  init: RequestInit & { json?: unknown } = {},
): Promise<T> {
  const { json, headers: extraHeaders, ...rest } = init;
  const headers = new Headers(extraHeaders);
  headers.set("Accept", "application/json");
  const token = getToken();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let body = rest.body;
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  const response = await fetch(apiUrl(path), { ...rest, headers, body, cache: "no-store" });
  if (!response.ok) {
    if (response.status === 401) markAuthRequired();
    throw new ApiError(response.status, await readDetail(response), path);
  }
  return (await response.json()) as T;
}

export const api = {
  status: (signal?: AbortSignal) => apiFetch<StatusResponse>("/api/status", { signal }),
  vms: (signal?: AbortSignal) => apiFetch<VmListResponse>("/api/vms?include_gone=true", { signal }),
  vm: (vmId: number, signal?: AbortSignal) =>
    apiFetch<VmDetail>(`/api/vms/${encodeURIComponent(vmId)}`, { signal }),
  jobs: (limit: number, signal?: AbortSignal) =>
    apiFetch<JobListResponse>(`/api/jobs?limit=${encodeURIComponent(limit)}`, { signal }),
  job: (jobId: number, signal?: AbortSignal) =>
    apiFetch<JobDetail>(`/api/jobs/${encodeURIComponent(jobId)}`, { signal }),
  history: (window: HistoryWindow, signal?: AbortSignal) =>
    apiFetch<HistoryResponse>(`/api/history?window=${encodeURIComponent(window)}`, { signal }),
  simulateJob: (request: SimulatedJobRequest) =>
    apiFetch<SimulatedJobResponse>("/api/simulator/jobs", { method: "POST", json: request }),
};
