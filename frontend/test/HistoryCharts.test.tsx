import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { HistoryCharts, toRows } from "@/components/HistoryCharts";
import { makeHistory } from "./fixtures";
import { json, mockApi, pending, renderWithClient } from "./utils";

describe("HistoryCharts", () => {
  it("shows chart skeletons while loading", () => {
    mockApi({ "/api/history": () => pending() });
    renderWithClient(<HistoryCharts />);
    expect(screen.getByTestId("history-skeleton")).toBeInTheDocument();
  });

  it("draws four charts and switches window", async () => {
    const fetchMock = mockApi({
      "/api/history?window=1h": makeHistory(),
      "/api/history?window=24h": makeHistory({ window: "24h", step_seconds: 900 }),
    });
    renderWithClient(<HistoryCharts />);
    await waitFor(() => expect(screen.getAllByTestId("history-chart")).toHaveLength(4));
    expect(screen.getByText("Queued → started")).toBeInTheDocument();
    expect(screen.getByText(/one sample every 1m 00s/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("radio", { name: "24h" }));
    await waitFor(() => expect(screen.getByText(/one sample every 15m 00s/)).toBeInTheDocument());
    expect(fetchMock.requests.some(({ url }) => url.search.includes("window=24h"))).toBe(true);
  });

  it("says so when the window has no samples", async () => {
    mockApi({ "/api/history": makeHistory({ points: [] }) });
    renderWithClient(<HistoryCharts />);
    await waitFor(() =>
      expect(screen.getAllByText("No samples in this window yet")).toHaveLength(4),
    );
  });

  it("shows an error when history cannot be loaded", async () => {
    mockApi({ "/api/history": json({ detail: "boom" }, 400) });
    renderWithClient(<HistoryCharts />);
    expect(await screen.findByText("Could not load history")).toBeInTheDocument();
  });

  it("turns per-step counts into per-minute rates", () => {
    const rows = toRows(makeHistory({ step_seconds: 300 }).points, 300);
    expect(rows[1]?.spawns_per_min).toBeCloseTo(1 / 5);
  });
});
