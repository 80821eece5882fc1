import { act, render, screen, waitFor } from "@testing-library/react";
import { useRef } from "react";
import { beforeEach, describe, expect, it } from "vitest";
import {
  shallowEqual,
  useStatusConnection,
  useStatusSelector,
  useStatusStream,
} from "@/hooks/useStatusStream";
import { makePool, makeStatus } from "./fixtures";
import {
  FakeEventSource,
  makeTestQueryClient,
  mockApi,
  networkDown,
  pending,
  pushStatus,
  renderHookWithClient,
  renderWithClient,
  renderWithStatus,
} from "./utils";

beforeEach(() => FakeEventSource.reset());

/** Shows a selection and how many times it rendered. */
function PoolNames() {
  const renders = useRef(0);
  renders.current += 1;
  const pools = useStatusSelector((s) => s.pools);
  return (
    <p data-testid="pools" data-renders={renders.current}>
      {pools === undefined ? "no data" : pools.map((p) => p.name).join(",") || "none"}
    </p>
  );
}

function Connection() {
  const { mode, isLoading, error, hasData } = useStatusConnection();
  return (
    <p data-testid="connection">
      {mode}/{isLoading ? "loading" : "loaded"}/{hasData ? "data" : "no data"}/
      {error ? error.message : "no error"}
    </p>
  );
}

describe("StatusStreamProvider and its selectors", () => {
  it("loading: no snapshot yet, connection loading", () => {
    mockApi({ "/api/status": () => pending() });
    renderWithClient(
      <>
        <PoolNames />
        <Connection />
      </>,
    );
    expect(screen.getByTestId("pools")).toHaveTextContent("no data");
    expect(screen.getByTestId("connection")).toHaveTextContent("polling/loading/no data/no error");
  });

  it("data: every widget selects from the one snapshot of the one subscription", async () => {
    const fetchMock = mockApi({ "/api/status": makeStatus() });
    renderWithClient(
      <>
        <PoolNames />
        <PoolNames />
        <Connection />
      </>,
    );
    await waitFor(() =>
      expect(screen.getAllByTestId("pools").map((el) => el.textContent)).toEqual([
        "default",
        "default",
      ]),
    );
    expect(screen.getByTestId("connection")).toHaveTextContent("polling/loaded/data/no error");
    // One subscription for the page: one event stream, one status fetch.
    expect(FakeEventSource.instances).toHaveLength(1);
    expect(fetchMock.requests.filter((r) => r.url.pathname === "/api/status")).toHaveLength(1);
  });

  it("empty: an empty selection is data, not loading", () => {
    mockApi({});
    renderWithStatus(<PoolNames />, makeStatus({ pools: [] }));
    expect(screen.getByTestId("pools")).toHaveTextContent("none");
  });

  it("error: offline with the error and no data when the API was never reachable", async () => {
    mockApi({ "/api/status": () => networkDown() });
    renderWithClient(
      <>
        <PoolNames />
        <Connection />
      </>,
    );
    act(() => FakeEventSource.latest().fail());
    await waitFor(() =>
      expect(screen.getByTestId("connection")).toHaveTextContent(
        "offline/loaded/no data/Failed to fetch",
      ),
    );
    expect(screen.getByTestId("pools")).toHaveTextContent("no data");
  });

  it("keeps the last snapshot while offline", async () => {
    mockApi({ "/api/status": () => networkDown() });
    renderWithStatus(
      <>
        <PoolNames />
        <Connection />
      </>,
      makeStatus(),
    );
    act(() => FakeEventSource.latest().open());
    act(() => FakeEventSource.latest().fail());
    await waitFor(() => expect(screen.getByTestId("connection")).toHaveTextContent(/^offline/));
    expect(screen.getByTestId("pools")).toHaveTextContent("default");
  });

  it("a pushed snapshot reaches the selectors", async () => {
    mockApi({ "/api/status": () => pending() });
    renderWithClient(<PoolNames />);
    act(() => {
      FakeEventSource.latest().open();
      FakeEventSource.latest().push(
        "status",
        makeStatus({ pools: [makePool(), makePool({ name: "large" })] }),
      );
    });
    await waitFor(() => expect(screen.getByTestId("pools")).toHaveTextContent("default,large"));
  });

  it("re-renders a widget only when what it selected changed", async () => {
    mockApi({});
    const status = makeStatus();
    const { client } = renderWithStatus(<PoolNames />, status);
    const renders = () => Number(screen.getByTestId("pools").getAttribute("data-renders"));
    const before = renders();
    // A new snapshot with equal pools (a fresh copy, as parsed from the wire): no re-render.
    await pushStatus(client, {
      ...structuredClone(status),
      snapshot_version: 2,
      queued_jobs_count: 9,
    });
    expect(renders()).toBe(before);
    await pushStatus(client, {
      ...structuredClone(status),
      snapshot_version: 3,
      pools: [makePool({ name: "large" })],
    });
    expect(screen.getByTestId("pools")).toHaveTextContent("large");
    expect(renders()).toBe(before + 1);
  });

  it("useStatusStream with an equality function keeps derived values stable", async () => {
    mockApi({ "/api/status": () => pending() });
    const client = makeTestQueryClient();
    const { result } = renderHookWithClient(
      () =>
        useStatusStream(
          (stream) => ({ mode: stream.mode, version: stream.data?.snapshot_version }),
          shallowEqual,
        ),
      client,
      { statusStream: true },
    );
    const first = result.current;
    await pushStatus(client, makeStatus({ snapshot_version: 4 }));
    expect(result.current).toEqual({ mode: "polling", version: 4 });
    const second = result.current;
    expect(second).not.toBe(first);
    await pushStatus(client, makeStatus({ snapshot_version: 4, queued_jobs_count: 8 }));
    expect(result.current).toBe(second);
  });

  it("says where it is missing", () => {
    expect(() => render(<PoolNames />)).toThrow(/StatusStreamProvider/);
  });
});

describe("shallowEqual", () => {
  it("compares one level deep", () => {
    const pools = [makePool()];
    expect(shallowEqual({ a: 1, pools }, { a: 1, pools })).toBe(true);
    expect(shallowEqual({ a: 1, pools }, { a: 1, pools: [...pools] })).toBe(false);
    expect(shallowEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(shallowEqual(null, null)).toBe(true);
    expect(shallowEqual<unknown>(null, {})).toBe(false);
  });
});
