import { act, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelay, useVMData } from "@/hooks/useVMData";
import { queryKeys } from "@/lib/api/queries";
import { isAuthRequired, setToken } from "@/lib/api/token";
import { makeStatus } from "./fixtures";
import {
  FakeEventSource,
  fakeEventSourceFactory,
  json,
  mockApi,
  networkDown,
  renderHookWithClient,
} from "./utils";

const FAST = { pollIntervalMs: 40, initialBackoffMs: 20, maxBackoffMs: 80 };

beforeEach(() => {
  FakeEventSource.reset();
});

describe("backoffDelay", () => {
  it("doubles from the initial delay and stops at the cap", () => {
    expect([0, 1, 2, 3, 4, 5, 9].map((n) => backoffDelay(n, 1000, 10_000))).toEqual([
      1000, 2000, 4000, 8000, 10_000, 10_000, 10_000,
    ]);
  });
});

describe("useVMData", () => {
  it("starts loading, then shows the first snapshot", async () => {
    mockApi({ "/api/status": makeStatus({ snapshot_version: 3 }) });
    const { result } = renderHookWithClient(() =>
      useVMData({ ...FAST, createEventSource: fakeEventSourceFactory() }),
    );
    expect(result.current.isLoading).toBe(true);
    expect(result.current.data).toBeUndefined();
    await waitFor(() => expect(result.current.data?.snapshot_version).toBe(3));
    expect(result.current.isLoading).toBe(false);
    expect(result.current.lastUpdatedAt).toBeTypeOf("number");
  });

  it("writes pushed status events into the query cache and reports live", async () => {
    mockApi({ "/api/status": makeStatus({ snapshot_version: 1 }) });
    const { result, client } = renderHookWithClient(() =>
      useVMData({ ...FAST, createEventSource: fakeEventSourceFactory() }),
    );
    const es = FakeEventSource.latest();
    expect(es.url).toMatch(/\/api\/events$/);
    act(() => es.open());
    expect(result.current.mode).toBe("live");
    act(() => es.push("status", makeStatus({ snapshot_version: 7, queued_jobs_count: 4 }), "7"));
    await waitFor(() => expect(result.current.data?.snapshot_version).toBe(7));
    expect(result.current.data?.queued_jobs_count).toBe(4);
    expect(client.getQueryData(queryKeys.status)).toMatchObject({ snapshot_version: 7 });
  });

  it("ignores malformed events", async () => {
    mockApi({ "/api/status": makeStatus({ snapshot_version: 1 }) });
    const { result } = renderHookWithClient(() =>
      useVMData({ ...FAST, createEventSource: fakeEventSourceFactory() }),
    );
    await waitFor(() => expect(result.current.data?.snapshot_version).toBe(1));
    act(() => FakeEventSource.latest().push("status", "{not json"));
    expect(result.current.data?.snapshot_version).toBe(1);
  });

  it("does not poll while the stream is live", async () => {
    const fetchMock = mockApi({ "/api/status": makeStatus() });
    const { result } = renderHookWithClient(() =>
      useVMData({ ...FAST, createEventSource: fakeEventSourceFactory() }),
    );
    act(() => FakeEventSource.latest().open());
    await waitFor(() => expect(result.current.data).toBeDefined());
    const calls = fetchMock.mock.calls.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(fetchMock.mock.calls.length).toBe(calls);
    expect(result.current.mode).toBe("live");
  });

  it("falls back to polling when the stream drops, and stops polling when it is back", async () => {
    let version = 1;
    const fetchMock = mockApi({ "/api/status": () => makeStatus({ snapshot_version: version }) });
    const { result } = renderHookWithClient(() =>
      useVMData({ ...FAST, initialBackoffMs: 150, createEventSource: fakeEventSourceFactory() }),
    );
    act(() => FakeEventSource.latest().open());
    await waitFor(() => expect(result.current.data?.snapshot_version).toBe(1));
    const before = fetchMock.mock.calls.length;

    act(() => FakeEventSource.latest().fail());
    expect(FakeEventSource.latest().closed).toBe(true);
    expect(result.current.mode).toBe("polling");
    version = 2;
    await waitFor(() => expect(result.current.data?.snapshot_version).toBe(2));
    await waitFor(() => expect(fetchMock.mock.calls.length).toBeGreaterThan(before + 2));

    // The hook reconnects by itself after the backoff delay.
    await waitFor(() => expect(FakeEventSource.instances).toHaveLength(2), { timeout: 1000 });
    act(() => FakeEventSource.latest().open());
    expect(result.current.mode).toBe("live");
    await new Promise((r) => setTimeout(r, 60));
    const settled = fetchMock.mock.calls.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(fetchMock.mock.calls.length).toBe(settled);
  });

  it("reconnects with exponential backoff capped at the maximum", async () => {
    vi.useFakeTimers();
    mockApi({ "/api/status": makeStatus() });
    renderHookWithClient(() =>
      useVMData({
        pollIntervalMs: 3000,
        initialBackoffMs: 1000,
        maxBackoffMs: 10_000,
        createEventSource: fakeEventSourceFactory(),
      }),
    );
    expect(FakeEventSource.instances).toHaveLength(1);
    const expectedDelays = [1000, 2000, 4000, 8000, 10_000, 10_000];
    for (const [i, delay] of expectedDelays.entries()) {
      act(() => FakeEventSource.latest().fail());
      await act(async () => {
        await vi.advanceTimersByTimeAsync(delay - 1);
      });
      expect(FakeEventSource.instances).toHaveLength(i + 1);
      await act(async () => {
        await vi.advanceTimersByTimeAsync(1);
      });
      expect(FakeEventSource.instances).toHaveLength(i + 2);
    }
    // A successful connection resets the backoff.
    act(() => FakeEventSource.latest().open());
    act(() => FakeEventSource.latest().fail());
    const count = FakeEventSource.instances.length;
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1000);
    });
    expect(FakeEventSource.instances).toHaveLength(count + 1);
  });

  it("reports offline with the last fresh time when the API is unreachable, then recovers", async () => {
    let up = true;
    mockApi({ "/api/status": () => (up ? makeStatus({ snapshot_version: 5 }) : networkDown()) });
    const { result } = renderHookWithClient(() =>
      useVMData({ ...FAST, createEventSource: fakeEventSourceFactory() }),
    );
    act(() => FakeEventSource.latest().open());
    await waitFor(() => expect(result.current.data?.snapshot_version).toBe(5));
    const lastFresh = result.current.lastUpdatedAt;

    up = false;
    act(() => FakeEventSource.latest().fail());
    await waitFor(() => expect(result.current.mode).toBe("offline"));
    expect(result.current.error).toBeInstanceOf(Error);
    expect(result.current.data?.snapshot_version).toBe(5); // stale data kept
    expect(result.current.lastUpdatedAt).toBe(lastFresh);

    up = true;
    await waitFor(() => expect(result.current.mode).toBe("polling"));
    expect(result.current.error).toBeNull();
    await waitFor(() => expect(FakeEventSource.instances.length).toBeGreaterThan(1));
    act(() => FakeEventSource.latest().open());
    expect(result.current.mode).toBe("live");
  });

  it("is offline from the start when the API was never reachable", async () => {
    mockApi({ "/api/status": () => networkDown() });
    const { result } = renderHookWithClient(() =>
      useVMData({ ...FAST, createEventSource: fakeEventSourceFactory() }),
    );
    act(() => FakeEventSource.latest().fail());
    await waitFor(() => expect(result.current.mode).toBe("offline"));
    expect(result.current.isLoading).toBe(false);
    expect(result.current.data).toBeUndefined();
    expect(result.current.lastUpdatedAt).toBeNull();
  });

  it("sends the token as a bearer header and as access_token on the stream", async () => {
    setToken("s3cret");
    const fetchMock = mockApi({ "/api/status": makeStatus() });
    renderHookWithClient(() => useVMData({ ...FAST, createEventSource: fakeEventSourceFactory() }));
    expect(FakeEventSource.latest().url).toMatch(/\/api\/events\?access_token=s3cret$/);
    await waitFor(() => expect(fetchMock).toHaveBeenCalled());
    expect(fetchMock.requests[0]?.headers.get("Authorization")).toBe("Bearer s3cret");
  });

  it("flags a 401 so the token form can show, without calling it a connection error", async () => {
    mockApi({ "/api/status": json({ detail: "Not authenticated" }, 401) });
    const { result } = renderHookWithClient(() =>
      useVMData({ ...FAST, createEventSource: fakeEventSourceFactory() }),
    );
    act(() => FakeEventSource.latest().fail());
    await waitFor(() => expect(isAuthRequired()).toBe(true));
    expect(result.current.mode).not.toBe("offline");
  });

  it("reopens the stream with the new token once one is entered", async () => {
    mockApi({ "/api/status": makeStatus() });
    renderHookWithClient(() => useVMData({ ...FAST, createEventSource: fakeEventSourceFactory() }));
    const first = FakeEventSource.latest();
    act(() => setToken("tok"));
    expect(first.closed).toBe(true);
    expect(FakeEventSource.latest().url).toContain("access_token=tok");
  });
});
