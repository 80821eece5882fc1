import { act, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import { SystemOverview } from "@/components/SystemOverview";
import { makeEmptyStatus, makeHistory, makeRepository, makeStatus } from "./fixtures";
import {
  FakeEventSource,
  mockApi,
  networkDown,
  pending,
  pushStatus,
  renderWithStatus,
} from "./utils";

beforeEach(() => FakeEventSource.reset());

describe("SystemOverview", () => {
  it("shows same-size skeletons while loading", () => {
    mockApi({ "/api/history": () => pending(), "/api/status": () => pending() });
    renderWithStatus(<SystemOverview />, undefined);
    expect(screen.getByTestId("system-overview-skeleton")).toBeInTheDocument();
    expect(screen.queryByTestId("system-overview")).not.toBeInTheDocument();
  });

  it("shows the figures, health and a trend per figure", async () => {
    mockApi({ "/api/history": makeHistory() });
    renderWithStatus(<SystemOverview />, makeStatus());
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
    renderWithStatus(<SystemOverview />, makeEmptyStatus());
    const success = screen.getByTestId("stat-success-rate-value");
    expect(success).toHaveTextContent("—");
    expect(within(success).getByLabelText("no data yet")).toBeInTheDocument();
    expect(screen.getByTestId("stat-spawn-rate-value")).toHaveTextContent("—");
    expect(screen.getByTestId("stat-active-vms-value")).toHaveTextContent("0");
  });

  it("flags a stuck loop, an unreachable GitHub and a rate-limit pause", () => {
    mockApi({ "/api/history": makeHistory() });
    const status = makeStatus();
    renderWithStatus(<SystemOverview />, {
      ...status,
      loop: { ...status.loop, stuck: true },
      github: {
        ...status.github,
        reachable: false,
        last_error: "502 Bad Gateway",
        blocked_until: Date.now() / 1000 + 600,
      },
    });
    expect(within(screen.getByTestId("loop-health")).getByText("stuck")).toBeInTheDocument();
    expect(screen.getByTestId("github-health")).toHaveTextContent("unreachable");
    expect(screen.getByTestId("github-health")).toHaveTextContent("502 Bad Gateway");
    expect(screen.getByTestId("github-health")).toHaveTextContent("Paused by rate limit");
  });

  it("shows how often GitHub is polled once the loop has paced it", () => {
    mockApi({ "/api/history": makeHistory() });
    const status = makeStatus();
    renderWithStatus(<SystemOverview />, {
      ...status,
      github: { ...status.github, poll_interval_seconds: 36.4 },
    });
    expect(screen.getByTestId("github-poll-interval")).toHaveTextContent("polls every 36s");
  });

  it("keeps its layout with dashes when the API is unreachable", async () => {
    mockApi({ "/api/history": () => networkDown(), "/api/status": () => networkDown() });
    renderWithStatus(<SystemOverview />, undefined);
    act(() => FakeEventSource.latest().fail());
    expect(await screen.findByRole("status")).toHaveTextContent("Failed to fetch");
    expect(screen.getByTestId("stat-active-vms-value")).toHaveTextContent("—");
  });

  it("lists no repositories while all are healthy, nor before any is polled", async () => {
    mockApi({ "/api/history": makeHistory() });
    const status = makeStatus();
    const { client } = renderWithStatus(<SystemOverview />, status);
    expect(screen.queryByTestId("github-repositories")).not.toBeInTheDocument();
    expect(screen.getByTestId("github-health")).toHaveTextContent("No errors");
    await pushStatus(client, { ...status, github: { ...status.github, repositories: [] } });
    expect(screen.queryByTestId("github-repositories")).not.toBeInTheDocument();
    const { repositories: _, ...older } = status.github;
    await pushStatus(client, { ...status, github: older });
    expect(screen.queryByTestId("github-repositories")).not.toBeInTheDocument();
    expect(screen.getByTestId("github-health")).toHaveTextContent("No errors");
  });

  it("lists unhealthy repositories with their error and fix, and renamed ones", async () => {
    mockApi({ "/api/history": makeHistory() });
    const status = makeStatus();
    const github = {
      ...status.github,
      repositories: [
        makeRepository(),
        makeRepository({ name: "acme/old", moved_to: "acme/new" }),
        makeRepository({
          name: "acme/secret",
          healthy: false,
          error:
            "403 Forbidden; fix: give the token `Administration: read and write` on acme/secret",
        }),
      ],
    };
    const { client } = renderWithStatus(<SystemOverview />, { ...status, github });
    const tile = screen.getByTestId("github-health");
    const badge = within(tile).getByText("1 repo unhealthy");
    expect(badge).toHaveAttribute("title", "reachable; 1 of 3 repositories unhealthy");
    expect(within(tile).queryByText("reachable")).not.toBeInTheDocument();
    const items = within(tile).getAllByTestId("github-repository");
    expect(items.map((el) => el.getAttribute("data-repository"))).toEqual([
      "acme/secret",
      "acme/old",
    ]);
    expect(items[0]).toHaveTextContent(
      "acme/secret: 403 Forbidden; fix: give the token Administration: read and write on acme/secret",
    );
    expect(items[0]).toHaveClass("text-red-400");
    expect(items[1]).toHaveTextContent("acme/old → acme/new");
    expect(items[1]).toHaveClass("text-amber-400");
    expect(tile).not.toHaveTextContent("No errors");

    // Unreachable wins the badge; the repositories stay listed.
    await pushStatus(client, { ...status, github: { ...github, reachable: false } });
    expect(within(tile).getByText("unreachable")).toBeInTheDocument();
    expect(within(tile).getAllByTestId("github-repository")).toHaveLength(2);
  });

  it("says which rate limit blocks GitHub calls", async () => {
    mockApi({ "/api/history": makeHistory() });
    const status = makeStatus();
    const blocked = (kind: "primary" | "secondary" | null) => ({
      ...status,
      github: { ...status.github, blocked_until: Date.now() / 1000 + 90, rate_limit_kind: kind },
    });
    const { client } = renderWithStatus(<SystemOverview />, blocked("secondary"));
    expect(screen.getByTestId("github-blocked")).toHaveTextContent(
      /^Paused by secondary rate limit until \d\d:\d\d:\d\d \(1m \d\ds\)$/,
    );
    await pushStatus(client, blocked("primary"));
    expect(screen.getByTestId("github-blocked")).toHaveTextContent(/^Paused by rate limit until/);
    await pushStatus(client, blocked(null));
    expect(screen.getByTestId("github-blocked")).toHaveTextContent(/^Paused by rate limit until/);
    // Not blocked: nothing to say, whatever the last kind was.
    await pushStatus(client, {
      ...status,
      github: { ...status.github, rate_limit_kind: "secondary" },
    });
    expect(screen.queryByTestId("github-blocked")).not.toBeInTheDocument();
  });
});
