import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { SystemOverview } from "@/components/SystemOverview";
import { makeEmptyStatus, makeHistory, makeStatus } from "./fixtures";
import { mockApi, pending, renderWithClient } from "./utils";

describe("SystemOverview", () => {
  it("shows same-size skeletons while loading", () => {
    mockApi({ "/api/history": () => pending() });
    renderWithClient(<SystemOverview status={undefined} isLoading />);
    expect(screen.getByTestId("system-overview-skeleton")).toBeInTheDocument();
    expect(screen.queryByTestId("system-overview")).not.toBeInTheDocument();
  });

  it("shows the figures, health and a trend per figure", async () => {
    mockApi({ "/api/history": makeHistory() });
    renderWithClient(<SystemOverview status={makeStatus()} isLoading={false} />);
    expect(screen.getByTestId("stat-active-vms-value")).toHaveTextContent("1");
    expect(screen.getByTestId("stat-active-vms")).toHaveTextContent("of 5");
    expect(screen.getByTestId("stat-spawn-rate-value")).toHaveTextContent("1.2");
    expect(screen.getByTestId("stat-saturation-value")).toHaveTextContent("20%");
    expect(screen.getByTestId("stat-saturation")).toHaveTextContent("default 1/5");
    expect(screen.getByTestId("stat-success-rate-value")).toHaveTextContent("94%");
    expect(within(screen.getByTestId("github-health")).getByText("reachable")).toBeInTheDocument();
    expect(screen.getByTestId("rate-limit")).toHaveTextContent("4,800");
    expect(within(screen.getByTestId("loop-health")).getByText("healthy")).toBeInTheDocument();
    await waitFor(() =>
      expect(
        screen.getByRole("img", { name: "Active VMs: trend over the last hour" }),
      ).toBeInTheDocument(),
    );
  });

  it("shows an em dash with a 'no data yet' hint for null metrics (empty system)", () => {
    mockApi({ "/api/history": makeHistory({ points: [] }) });
    renderWithClient(<SystemOverview status={makeEmptyStatus()} isLoading={false} />);
    const success = screen.getByTestId("stat-success-rate-value");
    expect(success).toHaveTextContent("—");
    expect(within(success).getByLabelText("no data yet")).toBeInTheDocument();
    expect(screen.getByTestId("stat-spawn-rate-value")).toHaveTextContent("—");
    expect(screen.getByTestId("stat-active-vms-value")).toHaveTextContent("0");
  });

  it("flags a stuck loop, an unreachable GitHub and a rate-limit pause", () => {
    mockApi({ "/api/history": makeHistory() });
    const status = makeStatus();
    renderWithClient(
      <SystemOverview
        status={{
          ...status,
          loop: { ...status.loop, stuck: true },
          github: {
            ...status.github,
            reachable: false,
            last_error: "502 Bad Gateway",
            blocked_until: Date.now() / 1000 + 600,
          },
        }}
        isLoading={false}
      />,
    );
    expect(within(screen.getByTestId("loop-health")).getByText("stuck")).toBeInTheDocument();
    expect(screen.getByTestId("github-health")).toHaveTextContent("unreachable");
    expect(screen.getByTestId("github-health")).toHaveTextContent("502 Bad Gateway");
    expect(screen.getByTestId("github-health")).toHaveTextContent("Paused by rate limit");
  });

  it("keeps its layout with dashes when the API is unreachable", () => {
    mockApi({
      "/api/history": () => {
        throw new TypeError("Failed to fetch");
      },
    });
    renderWithClient(
      <SystemOverview
        status={undefined}
        isLoading={false}
        error={new TypeError("Failed to fetch")}
      />,
    );
    expect(screen.getByTestId("stat-active-vms-value")).toHaveTextContent("—");
    expect(screen.getByRole("status")).toHaveTextContent("Failed to fetch");
  });
});
