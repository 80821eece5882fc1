/**
 * The one place that talks HTTP to the Blacksmith Mini API.
 *
 * Base URL: `NEXT_PUBLIC_API_URL` when set at build or dev time; otherwise the same origin in the
 * exported build (the backend serves it) and http://localhost:8000 under `next dev`.
 */
import { getActor, getToken, markAuthRequired } from "./token";
import type {
  ControlState,
  HistoryResponse,
  HistoryWindow,
  JobDetail,
  JobListResponse,
  OperatorRequest,
  PoolLimitsRequest,
  SimulatedJobRequest,
  SimulatedJobResponse,
  StatusResponse,
  StopVmRequest,
  Vm,
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

/** FastAPI's request-validation errors (422): `[{loc: [...], msg}]` in words. */
function validationText(detail: unknown): string | null {
  if (!Array.isArray(detail)) return null;
  const parts = detail.map((item: unknown) => {
    if (!item || typeof item !== "object") return String(item);
    const { loc, msg } = item as { loc?: unknown; msg?: unknown };
    const field = Array.isArray(loc) ? loc.filter((part) => part !== "body").join(".") : "";
    const text = typeof msg === "string" ? msg : JSON.stringify(item);
    return field ? `${field}: ${text}` : text;
  });
  return parts.length ? parts.join("; ") : null;
}

async function readDetail(response: Response): Promise<string | null> {
  try {
    const body: unknown = await response.json();
    if (body && typeof body === "object" && "detail" in body) {
      const { detail } = body as { detail: unknown };
      if (typeof detail === "string") return detail;
      return validationText(detail) ?? JSON.stringify(detail);
    }
  } catch {
    // Not JSON: fall through.
  }
  return null;
}

export const CHANGES_DISABLED_MESSAGE =
  "operator actions are disabled on this server: set server.admin_token";

/** What to tell the operator when an action failed, by the API's answer. */
export function operatorErrorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) {
      return "This action needs the admin token: enter it in the token form, then try again.";
    }
    if (error.status === 403) return CHANGES_DISABLED_MESSAGE;
    if (error.detail) return error.detail;
    return `The API answered HTTP ${error.status}.`;
  }
  if (error instanceof Error) return `Could not reach the API: ${error.message}`;
  return "Something went wrong.";
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
  const method = (rest.method ?? "GET").toUpperCase();
  const writing = method !== "GET" && method !== "HEAD";
  const actor = writing ? getActor() : null;
  if (actor) headers.set("X-Blacksmith-Actor", actor);
  let body = rest.body;
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  const response = await fetch(apiUrl(path), { ...rest, headers, body, cache: "no-store" });
  if (!response.ok) {
    if (response.status === 401) markAuthRequired(writing ? "admin" : "read");
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
  // Operator actions (admin). Each answers with what is in force afterwards.
  control: (signal?: AbortSignal) => apiFetch<ControlState>("/api/control", { signal }),
  drain: (request: OperatorRequest) =>
    apiFetch<ControlState>("/api/control/drain", { method: "POST", json: request }),
  resume: (request: OperatorRequest) =>
    apiFetch<ControlState>("/api/control/resume", { method: "POST", json: request }),
  pausePool: (name: string, request: OperatorRequest) =>
    apiFetch<ControlState>(`/api/pools/${encodeURIComponent(name)}/pause`, {
      method: "POST",
      json: request,
    }),
  resumePool: (name: string, request: OperatorRequest) =>
    apiFetch<ControlState>(`/api/pools/${encodeURIComponent(name)}/resume`, {
      method: "POST",
      json: request,
    }),
  setPoolLimits: (name: string, request: PoolLimitsRequest) =>
    apiFetch<ControlState>(`/api/pools/${encodeURIComponent(name)}`, {
      method: "PATCH",
      json: request,
    }),
  stopVm: (vmId: number, request: StopVmRequest) =>
    apiFetch<Vm>(`/api/vms/${encodeURIComponent(vmId)}/stop`, { method: "POST", json: request }),
};
