/** Test helpers: a fake API (fetch), a fake EventSource and a render with providers. */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, renderHook } from "@testing-library/react";
import type { ReactElement, ReactNode } from "react";
import { vi } from "vitest";
import { TooltipProvider } from "@/components/ui/tooltip";

export type Handler = (request: { url: URL; init: RequestInit }) => unknown;

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

/**
 * Stubs `fetch`: `routes` maps a path (with its query, e.g. "/api/jobs?limit=100", or without it)
 * to a handler returning a body (200), a Response, a thrown error, or a promise of those.
 */
export function mockApi(routes: Record<string, Handler | unknown>) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(typeof input === "string" ? input : input.toString(), "http://localhost");
    const route = routes[url.pathname + url.search] ?? routes[url.pathname];
    if (route === undefined) return json({ detail: "Not Found" }, 404);
    const result = typeof route === "function" ? await (route as Handler)({ url, init }) : route;
    return result instanceof Response ? result.clone() : json(result);
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
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

export function wrapperFor(client: QueryClient) {
  // biome-ignore lint/correctness/noComponentHookFactories: a test wrapper bound to one client
  return function Wrapper({ children }: { children: ReactNode }) {
    return (
      <QueryClientProvider client={client}>
        <TooltipProvider>{children}</TooltipProvider>
      </QueryClientProvider>
    );
  };
}

export function renderWithClient(ui: ReactElement, client: QueryClient = makeTestQueryClient()) {
  return { client, ...render(ui, { wrapper: wrapperFor(client) }) };
}

export function renderHookWithClient<T>(
  hook: () => T,
  client: QueryClient = makeTestQueryClient(),
) {
  return { client, ...renderHook(hook, { wrapper: wrapperFor(client) }) };
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

/** The calls `fetchMock` received for a path and method, with their parsed JSON bodies. */
export function callsTo(
  fetchMock: ReturnType<typeof mockApi>,
  path: string,
  method = "POST",
): { body: unknown; headers: Headers }[] {
  return fetchMock.mock.calls
    .map(([input, init]) => ({
      url: new URL(String(input), "http://localhost"),
      init: (init ?? {}) as RequestInit,
    }))
    .filter(({ url, init }) => url.pathname === path && (init.method ?? "GET") === method)
    .map(({ init }) => ({
      body: init.body ? JSON.parse(String(init.body)) : undefined,
      headers: new Headers(init.headers),
    }));
}
