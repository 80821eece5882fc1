/**
 * The one place that talks HTTP to the Blacksmith Mini API.
 *
 * `client` is an `openapi-fetch` client over the generated `paths` of `schema.d.ts`: every path,
 * method, parameter, request body and response is typed from the backend's OpenAPI document, so
 * `client.GET("/api/vms/{vm_id}", { params: { path: { vm_id } } })` answers a `VmDetail` and a
 * renamed field or path breaks `tsc`. One middleware adds the token (`Authorization: Bearer`) and,
 * on changes, the operator's name (`X-Blacksmith-Actor`), flags a 401 for the token form and turns
 * every non-2xx answer into an `ApiError`. `api` wraps each call the dashboard makes.
 *
 * Base URL: `NEXT_PUBLIC_API_URL` when set at build or dev time; otherwise the same origin in the
 * exported build (the backend serves it) and http://localhost:8000 under `next dev`.
 */
import createClient, { type Middleware } from "openapi-fetch";
import type { paths } from "./schema";
import { getActor, getToken, markAuthRequired } from "./token";
import type {
  HistoryWindow,
  OperatorRequest,
  PoolLimitsRequest,
  SimulatedJobRequest,
  StopVmRequest,
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
    const loc = "loc" in item ? item.loc : undefined;
    const msg = "msg" in item ? item.msg : undefined;
    const field = Array.isArray(loc) ? loc.filter((part) => part !== "body").join(".") : "";
    const text = typeof msg === "string" ? msg : JSON.stringify(item);
    return field ? `${field}: ${text}` : text;
  });
  return parts.length ? parts.join("; ") : null;
}

/** The `detail` of an error answer (`ErrorResponse` or FastAPI's 422), in words; null if none. */
async function readDetail(response: Response): Promise<string | null> {
  try {
    const body: unknown = await response.json();
    if (body && typeof body === "object" && "detail" in body) {
      const { detail } = body;
      if (typeof detail === "string") return detail;
      return validationText(detail) ?? JSON.stringify(detail);
    }
  } catch {
    // Not JSON: fall through.
  }
  return null;
}

function isWrite(method: string): boolean {
  const upper = method.toUpperCase();
  return upper !== "GET" && upper !== "HEAD";
}

function requestPath(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.pathname}${parsed.search}`;
  } catch {
    return url;
  }
}

/** Token and actor headers on the way out; 401 flag and `ApiError` on the way back. */
export const authMiddleware: Middleware = {
  onRequest({ request }) {
    request.headers.set("Accept", "application/json");
    const token = getToken();
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    const actor = isWrite(request.method) ? getActor() : null;
    if (actor) request.headers.set("X-Blacksmith-Actor", actor);
    return request;
  },
  async onResponse({ request, response }) {
    if (response.ok) return undefined;
    if (response.status === 401) markAuthRequired(isWrite(request.method) ? "admin" : "read");
    throw new ApiError(response.status, await readDetail(response), requestPath(request.url));
  },
};

/** The origin requests go to: relative URLs need one to build a `Request` from. */
function baseUrl(): string {
  const configured = apiBaseUrl();
  if (configured) return configured;
  return typeof window === "undefined" ? "" : window.location.origin;
}

export const client = createClient<paths>({
  baseUrl: baseUrl(),
  cache: "no-store",
  // Looked up at call time, not captured once: test doubles replace the global `fetch`.
  fetch: (request) => globalThis.fetch(request),
});
client.use(authMiddleware);

/**
 * The typed body of a 2xx answer. Error answers never get here (the middleware throws an
 * `ApiError`); a 2xx without a body is one too, since every endpoint used answers JSON.
 */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, response } = await call;
  if (data === undefined) {
    throw new ApiError(response.status, "empty answer", requestPath(response.url));
  }
  return data;
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

/** Every call the dashboard makes, each typed by its path and method in the OpenAPI document. */
export const api = {
  status: (signal?: AbortSignal) => unwrap(client.GET("/api/status", { signal })),
  /** Active VMs and the most recent gone ones (the VM history). */
  vms: (signal?: AbortSignal) =>
    unwrap(client.GET("/api/vms", { params: { query: { include_gone: true } }, signal })),
  vm: (vmId: number, signal?: AbortSignal) =>
    unwrap(client.GET("/api/vms/{vm_id}", { params: { path: { vm_id: vmId } }, signal })),
  /** Open jobs, then the most recent completed ones (the job history). */
  jobs: (limit: number, signal?: AbortSignal) =>
    unwrap(client.GET("/api/jobs", { params: { query: { limit } }, signal })),
  job: (jobId: number, signal?: AbortSignal) =>
    unwrap(client.GET("/api/jobs/{job_id}", { params: { path: { job_id: jobId } }, signal })),
  history: (window: HistoryWindow, signal?: AbortSignal) =>
    unwrap(client.GET("/api/history", { params: { query: { window } }, signal })),
  simulateJob: (request: SimulatedJobRequest) =>
    unwrap(client.POST("/api/simulator/jobs", { body: request })),
  // Operator actions (admin). Each answers with what is in force afterwards.
  control: (signal?: AbortSignal) => unwrap(client.GET("/api/control", { signal })),
  drain: (request: OperatorRequest) => unwrap(client.POST("/api/control/drain", { body: request })),
  resume: (request: OperatorRequest) =>
    unwrap(client.POST("/api/control/resume", { body: request })),
  pausePool: (name: string, request: OperatorRequest) =>
    unwrap(client.POST("/api/pools/{name}/pause", { params: { path: { name } }, body: request })),
  resumePool: (name: string, request: OperatorRequest) =>
    unwrap(client.POST("/api/pools/{name}/resume", { params: { path: { name } }, body: request })),
  setPoolLimits: (name: string, request: PoolLimitsRequest) =>
    unwrap(client.PATCH("/api/pools/{name}", { params: { path: { name } }, body: request })),
  stopVm: (vmId: number, request: StopVmRequest) =>
    unwrap(
      client.POST("/api/vms/{vm_id}/stop", { params: { path: { vm_id: vmId } }, body: request }),
    ),
};
