/** Test helpers: a fake API (fetch), a fake EventSource and a render with providers. */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, render, renderHook } from "@testing-library/react";
import type { ReactElement, ReactNode } from "react";
import { vi } from "vitest";
import { TooltipProvider } from "@/components/ui/tooltip";
import { StatusStreamProvider } from "@/hooks/useStatusStream";
import type { UseVMDataOptions } from "@/hooks/useVMData";
import { queryKeys } from "@/lib/api/queries";
import type { StatusResponse } from "@/lib/api/types";

export type Handler = (request: { url: URL; init: RequestInit }) => unknown;

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

/** One request the fake API received, as the client sent it. */
export interface RecordedRequest {
  url: URL;
  method: string;
  headers: Headers;
  /** The parsed JSON body, undefined without one. */
  body: unknown;
  /** The body as sent. */
  text: string | undefined;
}

/** The arguments of a `fetch` call (a `Request`, as openapi-fetch sends, or a URL and init). */
async function readRequest(
  input: RequestInfo | URL,
  init: RequestInit = {},
): Promise<RecordedRequest> {
  if (input instanceof Request) {
    const text = await input.clone().text();
    return {
      url: new URL(input.url, "http://localhost"),
      method: input.method,
      headers: new Headers(input.headers),
      body: text ? JSON.parse(text) : undefined,
      text: text || undefined,
    };
  }
  return {
    url: new URL(String(input), "http://localhost"),
    method: (init.method ?? "GET").toUpperCase(),
    headers: new Headers(init.headers),
    body: init.body ? JSON.parse(String(init.body)) : undefined,
    text: init.body ? String(init.body) : undefined,
  };
}

/**
 * Stubs `fetch`: `routes` maps a path (with its query, e.g. "/api/jobs?limit=100", or without it)
 * to a handler returning a body (200), a Response, a thrown error, or a promise of those. Every
 * request is recorded in `requests` (see `callsTo`).
 */
export function mockApi(routes: Record<string, Handler | unknown>) {
  const requests: RecordedRequest[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const request = await readRequest(input, init);
    requests.push(request);
    const { url } = request;
    const route = routes[url.pathname + url.search] ?? routes[url.pathname];
    if (route === undefined) return json({ detail: "Not Found" }, 404);
    const result =
      typeof route === "function"
        ? await (route as Handler)({
            url,
            init: { method: request.method, headers: request.headers, body: request.text },
          })
        : route;
    return result instanceof Response ? result.clone() : json(result);
  });
  vi.stubGlobal("fetch", fetchMock);
  return Object.assign(fetchMock, { requests });
}

export function networkDown(): never {
  throw new TypeError("Failed to fetch");
}

/** Never resolves: keeps a query loading. */
export function pending(): Promise<never> {
  return new Promise<never>(() => {});
}

export function makeTestQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: { retry: false, gcTime: Number.POSITIVE_INFINITY },
      mutations: { retry: false },
    },
  });
}

export interface WrapperOptions {
  /**
   * Mount the page's `StatusStreamProvider` (default true), over a fake EventSource (the test's
   * `FakeEventSource`) and polling `GET /api/status` (mock it, or seed it with `seedStatus`).
   */
  statusStream?: boolean | UseVMDataOptions;
}

export function wrapperFor(client: QueryClient, { statusStream = true }: WrapperOptions = {}) {
  const streamOptions: UseVMDataOptions = {
    createEventSource: fakeEventSourceFactory(),
    ...(typeof statusStream === "object" ? statusStream : {}),
  };
  // biome-ignore lint/correctness/noComponentHookFactories: a test wrapper bound to one client
  return function Wrapper({ children }: { children: ReactNode }) {
    const tree = <TooltipProvider>{children}</TooltipProvider>;
    return (
      <QueryClientProvider client={client}>
        {statusStream ? (
          <StatusStreamProvider {...streamOptions}>{tree}</StatusStreamProvider>
        ) : (
          tree
        )}
      </QueryClientProvider>
    );
  };
}

/**
 * Puts a status snapshot in the cache as if the stream had pushed it (kept fresh: no refetch on
 * mount). Call it before rendering for a widget's data state, or inside `act` to push a new one.
 */
export function seedStatus(client: QueryClient, status: StatusResponse): void {
  client.setQueryDefaults(queryKeys.status, { staleTime: Number.POSITIVE_INFINITY });
  client.setQueryData(queryKeys.status, status);
}

export function renderWithClient(
  ui: ReactElement,
  client: QueryClient = makeTestQueryClient(),
  options: WrapperOptions = {},
) {
  return { client, ...render(ui, { wrapper: wrapperFor(client, options) }) };
}

/** Pushes a new snapshot into the stream and lets the widgets re-render with it. */
export async function pushStatus(client: QueryClient, status: StatusResponse): Promise<void> {
  await act(async () => {
    seedStatus(client, status);
    // TanStack Query notifies its observers on the next macrotask.
    await new Promise((resolve) => setTimeout(resolve, 0));
  });
}

/** Renders a widget under the status stream holding `status` (or none yet, when undefined). */
export function renderWithStatus(
  ui: ReactElement,
  status: StatusResponse | undefined,
  client: QueryClient = makeTestQueryClient(),
) {
  if (status) seedStatus(client, status);
  return renderWithClient(ui, client);
}

/** Renders a hook; without the status stream unless asked (the hook may be `useVMData` itself). */
export function renderHookWithClient<T>(
  hook: () => T,
  client: QueryClient = makeTestQueryClient(),
  options: WrapperOptions = { statusStream: false },
) {
  return { client, ...renderHook(hook, { wrapper: wrapperFor(client, options) }) };
}

type Listener = (event: MessageEvent) => void;

/** An EventSource driven by the test: `open()`, `push(event, data)`, `fail()`. */
export class FakeEventSource {
  static instances: FakeEventSource[] = [];
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;

  readonly url: string;
  readyState = FakeEventSource.CONNECTING;
  onopen: ((event: Event) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onmessage: Listener | null = null;
  private listeners = new Map<string, Set<Listener>>();

  constructor(url: string) {
    this.url = url;
    FakeEventSource.instances.push(this);
  }

  static reset(): void {
    FakeEventSource.instances = [];
  }

  static latest(): FakeEventSource {
    const last = FakeEventSource.instances.at(-1);
    if (!last) throw new Error("no EventSource was opened");
    return last;
  }

  addEventListener(type: string, listener: Listener): void {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)?.add(listener);
  }

  removeEventListener(type: string, listener: Listener): void {
    this.listeners.get(type)?.delete(listener);
  }

  close(): void {
    this.readyState = FakeEventSource.CLOSED;
  }

  get closed(): boolean {
    return this.readyState === FakeEventSource.CLOSED;
  }

  open(): void {
    this.readyState = FakeEventSource.OPEN;
    this.onopen?.(new Event("open"));
  }

  push(type: string, data: unknown, id?: string): void {
    const event = new MessageEvent(type, {
      data: typeof data === "string" ? data : JSON.stringify(data),
      lastEventId: id ?? "",
    });
    for (const listener of this.listeners.get(type) ?? []) listener(event);
    if (type === "message") this.onmessage?.(event);
  }

  fail(): void {
    this.readyState = FakeEventSource.CONNECTING;
    this.onerror?.(new Event("error"));
  }
}

export function fakeEventSourceFactory() {
  return (url: string) => new FakeEventSource(url) as unknown as EventSource;
}

/** A promise to settle by hand: keeps a request pending until the test says so. */
export function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The requests `fetchMock` received for a path and method, with their parsed JSON bodies. */
export function callsTo(
  fetchMock: ReturnType<typeof mockApi>,
  path: string,
  method = "POST",
): { body: unknown; headers: Headers; url: URL }[] {
  return fetchMock.requests
    .filter((request) => request.url.pathname === path && request.method === method)
    .map(({ body, headers, url }) => ({ body, headers, url }));
}
