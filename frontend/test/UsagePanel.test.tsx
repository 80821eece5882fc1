import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { UsagePanel, type UsageResponse, usageCsvUrl } from "@/components/UsagePanel";
import { setToken } from "@/lib/api/token";
import { json, mockApi, networkDown, pending, renderWithClient } from "./utils";

function makeUsage(overrides: Partial<UsageResponse> = {}): UsageResponse {
  return {
    since: "2024-06-04",
    until: "2024-06-10",
    group_by: "repository",
    cost_per_vcpu_hour: 0.5,
    rows: [
      {
        day: null,
        repository: "acme/infra",
        workflow: null,
        vm_seconds: 7200,
        vcpu_seconds: 57_600,
        cost: 8,
      },
      {
        day: null,
        repository: "acme/app",
        workflow: null,
        vm_seconds: 5400,
        vcpu_seconds: 10_800,
        cost: 1.5,
      },
    ],
    totals: { vm_seconds: 12_600, vcpu_seconds: 68_400, cost: 9.5 },
    ...overrides,
  };
}

describe("UsagePanel", () => {
  it("shows a skeleton while loading", () => {
    mockApi({ "/api/usage": () => pending() });
    renderWithClient(<UsagePanel />);
    expect(screen.getByTestId("usage-skeleton")).toBeInTheDocument();
  });

  it("shows VM-hours, vCPU-hours and cost per repository, with totals and a CSV link", async () => {
    const fetchMock = mockApi({ "/api/usage?group_by=repository": makeUsage() });
    renderWithClient(<UsagePanel />);
    const table = await screen.findByTestId("usage-table");
    const infra = within(table).getByRole("row", { name: /acme\/infra/ });
    expect(
      within(infra)
        .getAllByRole("cell")
        .map((c) => c.textContent),
    ).toEqual(["2.0", "16.0", "8.00"]);
    const total = within(table).getByRole("row", { name: /Total/ });
    expect(
      within(total)
        .getAllByRole("cell")
        .map((c) => c.textContent),
    ).toEqual(["3.5", "19.0", "9.50"]);
    expect(screen.getByText("2024-06-04 – 2024-06-10 (UTC), per repository")).toBeInTheDocument();
    const link = screen.getByRole("link", { name: /CSV/ });
    expect(link.getAttribute("href")).toBe(
      "/api/usage.csv?since=2024-06-04&until=2024-06-10&group_by=repository",
    );
    expect(fetchMock.requests[0]?.url.searchParams.get("group_by")).toBe("repository");
  });

  it("shows no cost when no price is set", async () => {
    mockApi({ "/api/usage": makeUsage({ cost_per_vcpu_hour: 0 }) });
    renderWithClient(<UsagePanel />);
    await screen.findByTestId("usage-table");
    expect(
      screen.getAllByRole("button", { name: "no price set: usage.cost_per_vcpu_hour" }),
    ).toHaveLength(3);
  });

  it("says so when there was no usage", async () => {
    mockApi({
      "/api/usage": makeUsage({
        rows: [],
        totals: { vm_seconds: 0, vcpu_seconds: 0, cost: 0 },
      }),
    });
    renderWithClient(<UsagePanel />);
    expect(await screen.findByText("No VM usage in the last 7 days")).toBeInTheDocument();
    expect(screen.queryByTestId("usage-table")).not.toBeInTheDocument();
  });

  it("shows an error when usage cannot be loaded", async () => {
    mockApi({ "/api/usage": json({ detail: "boom" }, 400) });
    renderWithClient(<UsagePanel />);
    const alert = await screen.findByRole("alert");
    expect(within(alert).getByText("Could not load usage")).toBeInTheDocument();
    expect(within(alert).getByText(/boom/)).toBeInTheDocument();
  });

  it("shows an error when the API is down", async () => {
    mockApi({ "/api/usage": () => networkDown() });
    renderWithClient(<UsagePanel />);
    expect(await screen.findByText("Could not load usage", {}, { timeout: 5000 })).toBeVisible();
  });

  it("puts the token in the CSV link, which cannot send headers", () => {
    setToken("s3cret");
    expect(usageCsvUrl({ since: "2024-06-04", until: "2024-06-10" })).toBe(
      "/api/usage.csv?since=2024-06-04&until=2024-06-10&group_by=repository&access_token=s3cret",
    );
  });
});
