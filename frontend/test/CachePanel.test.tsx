import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import {
  CACHE_OFF_HINT,
  type CacheEntriesResponse,
  type CacheMetricsResponse,
  CachePanel,
  type CacheRepositoryCounters,
  cacheRows,
  formatBytes,
} from "@/components/CachePanel";
import { json, mockApi, networkDown, pending, renderWithClient } from "./utils";

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

function makeCounters(overrides: Partial<CacheRepositoryCounters> = {}): CacheRepositoryCounters {
  return {
    hits: 12,
    restore_key_hits: 3,
    misses: 4,
    bytes_in: 1536,
    bytes_out: 5 * MIB,
    saves: 2,
    conflicts: 0,
    evictions: 1,
    evicted_bytes: 512 * KIB,
    corrupt: 0,
    denied: 0,
    hit_rate: 0.75,
    ...overrides,
  };
}

/** acme/app: calls and entries; acme/web: calls, no entries; acme/old: entries, no calls. */
function makeMetrics(overrides: Partial<CacheMetricsResponse> = {}): CacheMetricsResponse {
  return {
    enabled: true,
    detail: null,
    repositories: {
      "acme/web": makeCounters({
        hits: 0,
        restore_key_hits: 0,
        misses: 0,
        bytes_in: 0,
        bytes_out: 0,
        evictions: 0,
        evicted_bytes: 0,
        hit_rate: null,
      }),
      "acme/app": makeCounters(),
    },
    usage_bytes: { "acme/app": 1.5 * GIB, "acme/old": 200 * MIB },
    entry_counts: { "acme/app": 7, "acme/old": 2 },
    host_bytes: 1.5 * GIB + 200 * MIB,
    limits: { repository_bytes: 10 * GIB, host_bytes: 100 * GIB },
    ...overrides,
  };
}

function cellsOf(row: HTMLElement): (string | null)[] {
  return within(row)
    .getAllByRole("cell")
    .map((c) => c.textContent);
}

describe("formatBytes", () => {
  it("uses binary units with one decimal unless whole", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(5 * MIB)).toBe("5 MiB");
    expect(formatBytes(1.25 * GIB)).toBe("1.3 GiB");
    expect(formatBytes(100 * GIB)).toBe("100 GiB");
  });
});

describe("cacheRows", () => {
  it("joins the repositories with counters and those with entries, sorted by name", () => {
    const rows = cacheRows(makeMetrics());
    expect(rows.map((r) => r.repository)).toEqual(["acme/app", "acme/old", "acme/web"]);
    expect(rows[1]).toEqual({
      repository: "acme/old",
      entries: 2,
      storedBytes: 200 * MIB,
      counters: null,
    });
    expect(rows[2]?.entries).toBe(0);
    expect(rows[2]?.storedBytes).toBe(0);
  });
});

describe("CachePanel", () => {
  it("shows a skeleton while loading", () => {
    mockApi({ "/api/cache/metrics": () => pending() });
    renderWithClient(<CachePanel />);
    expect(screen.getByTestId("cache-skeleton")).toBeInTheDocument();
  });

  it("shows each repository's entries, sizes, hits, misses, hit rate, bytes and evictions", async () => {
    mockApi({ "/api/cache/metrics": makeMetrics() });
    renderWithClient(<CachePanel />);
    const panel = await screen.findByTestId("cache-panel");
    const app = await within(panel).findByTestId("cache-row-acme/app");
    expect(within(app).getByRole("rowheader")).toHaveTextContent("acme/app");
    expect(cellsOf(app)).toEqual([
      "7",
      "1.5 GiB",
      "12 (3 via restore key)",
      "4",
      "75%",
      "1.5 KiB",
      "5 MiB",
      "1 (512 KiB)",
    ]);
    expect(screen.getByTestId("cache-summary")).toHaveTextContent(
      "1.7 GiB of 100 GiB stored on this host · 10 GiB per repository",
    );
    const rows = within(screen.getByTestId("cache-table")).getAllByRole("row").slice(1);
    expect(rows.map((r) => r.getAttribute("data-testid"))).toEqual([
      "cache-row-acme/app",
      "cache-row-acme/old",
      "cache-row-acme/web",
    ]);
  });

  it("shows no counters for a repository with entries but no calls, and no rate before a lookup", async () => {
    mockApi({ "/api/cache/metrics": makeMetrics() });
    renderWithClient(<CachePanel />);
    const old = await screen.findByTestId("cache-row-acme/old");
    expect(cellsOf(old).slice(0, 2)).toEqual(["2", "200 MiB"]);
    expect(
      within(old).getAllByRole("button", { name: "no cache calls since the server started" }),
    ).toHaveLength(6);
    const web = screen.getByTestId("cache-row-acme/web");
    expect(cellsOf(web)).toEqual(["0", "0 B", "0", "0", "—", "0 B", "0 B", "0"]);
    expect(within(web).getByRole("button", { name: "no lookups yet" })).toBeInTheDocument();
    expect(within(web).queryByRole("button", { name: /cache entries of/ })).not.toBeInTheDocument();
  });

  it("unfolds a repository's entries", async () => {
    const entries: CacheEntriesResponse = {
      total_count: 1,
      entries: [
        {
          id: 5,
          repository: "acme/app",
          ref: "refs/heads/main",
          key: "node-modules-abc123",
          version: "v1",
          size_in_bytes: 3 * MIB,
          sha256: null,
          created_at: "2024-06-10T10:00:00Z",
          last_accessed_at: "2024-06-10T11:00:00Z",
        },
      ],
    };
    const fetchMock = mockApi({
      "/api/cache/metrics": makeMetrics(),
      "/api/cache/entries?repository=acme%2Fapp": entries,
    });
    renderWithClient(<CachePanel />);
    const toggle = await screen.findByRole("button", {
      name: "Show the cache entries of acme/app",
    });
    expect(toggle).toHaveAttribute("aria-expanded", "false");
    await userEvent.click(toggle);
    const list = await screen.findByTestId("cache-entries-acme/app");
    expect(await within(list).findByText("node-modules-abc123")).toBeInTheDocument();
    expect(within(list).getByText("refs/heads/main")).toBeInTheDocument();
    expect(within(list).getByText("3 MiB")).toBeInTheDocument();
    expect(
      fetchMock.requests
        .find((r) => r.url.pathname === "/api/cache/entries")
        ?.url.searchParams.get("repository"),
    ).toBe("acme/app");
    await userEvent.click(
      screen.getByRole("button", { name: "Hide the cache entries of acme/app" }),
    );
    expect(screen.queryByTestId("cache-entries-acme/app")).not.toBeInTheDocument();
  });

  it("says so when the cache is on but holds nothing yet", async () => {
    mockApi({
      "/api/cache/metrics": makeMetrics({
        repositories: {},
        usage_bytes: {},
        entry_counts: {},
        host_bytes: 0,
      }),
    });
    renderWithClient(<CachePanel />);
    expect(await screen.findByText("No cache entries yet")).toBeInTheDocument();
    expect(screen.queryByTestId("cache-table")).not.toBeInTheDocument();
    expect(screen.getByTestId("cache-summary")).toHaveTextContent(
      "0 B of 100 GiB stored on this host · 10 GiB per repository",
    );
  });

  it("shows the off state with the server's hint when the cache is off (404), not an error", async () => {
    const fetchMock = mockApi({
      "/api/cache/metrics": json({ detail: CACHE_OFF_HINT }, 404),
    });
    renderWithClient(<CachePanel />);
    const off = await screen.findByTestId("cache-off");
    expect(off).toHaveTextContent("The Actions cache is off on this server");
    expect(off).toHaveTextContent("BLACKSMITH_CACHE__ENABLED=true");
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    expect(screen.queryByTestId("cache-table")).not.toBeInTheDocument();
    // A 404 is an answer: not retried.
    expect(fetchMock.requests.filter((r) => r.url.pathname === "/api/cache/metrics")).toHaveLength(
      1,
    );
  });

  it("shows the off state when the server answers enabled: false", async () => {
    mockApi({
      "/api/cache/metrics": json({
        enabled: false,
        detail: CACHE_OFF_HINT,
        repositories: {},
        usage_bytes: {},
        entry_counts: {},
        host_bytes: 0,
        limits: { repository_bytes: 0, host_bytes: 0 },
      }),
    });
    renderWithClient(<CachePanel />);
    const off = await screen.findByTestId("cache-off");
    expect(off).toHaveTextContent("BLACKSMITH_CACHE__ENABLED=true");
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    expect(screen.queryByTestId("cache-summary")).not.toBeInTheDocument();
  });

  it("shows an error when the metrics cannot be loaded", async () => {
    mockApi({ "/api/cache/metrics": json({ detail: "boom" }, 400) });
    renderWithClient(<CachePanel />);
    const alert = await screen.findByRole("alert");
    expect(within(alert).getByText("Could not load the cache metrics")).toBeInTheDocument();
    expect(within(alert).getByText(/boom/)).toBeInTheDocument();
    expect(screen.queryByTestId("cache-off")).not.toBeInTheDocument();
  });

  it("shows an error when the API is down", async () => {
    mockApi({ "/api/cache/metrics": () => networkDown() });
    renderWithClient(<CachePanel />);
    expect(
      await screen.findByText("Could not load the cache metrics", {}, { timeout: 5000 }),
    ).toBeVisible();
  });
});
