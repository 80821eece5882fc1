import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { idleWords, PoolsTile, poolCounts, validateLimits } from "@/components/PoolsPanel";
import type { Pool } from "@/lib/api/types";
import { makeControl, makePool, makeStartBackoff, makeStatus, NOW } from "./fixtures";
import { callsTo, deferred, json, mockApi, renderWithClient, renderWithStatus } from "./utils";

const large: Pool = {
  name: "large",
  labels: ["self-hosted", "large"],
  vcpus: 8,
  memory_mib: 16384,
  min_idle: 0,
  max_vms: 2,
  idle_target: 0,
  idle_reason: "fixed: min_idle 0",
  idle_vm_minutes_last_hour: 0,
  queued_jobs: 3,
  vms_by_status: { busy: 2, gone: 4 },
  paused: false,
};

function Tile() {
  return <PoolsTile />;
}

function row(name: string) {
  return screen
    .getAllByTestId("pool-row")
    .find((el) => el.getAttribute("data-pool") === name) as HTMLElement;
}

async function openLimits(name = "default") {
  const user = userEvent.setup();
  await user.click(await screen.findByRole("button", { name: `Edit limits of pool ${name}` }));
  const dialog = screen.getByRole("dialog");
  return {
    user,
    dialog,
    min: within(dialog).getByLabelText(/min_idle/),
    max: within(dialog).getByLabelText(/max_vms/),
    save: within(dialog).getByRole("button", { name: "Save" }),
  };
}

describe("validateLimits", () => {
  it("wants whole numbers within the server's bounds, min_idle not above max_vms", () => {
    expect(validateLimits("1", "5")).toEqual({});
    expect(validateLimits("0", "0")).toEqual({});
    expect(validateLimits("6", "5")).toEqual({ minIdle: "Cannot exceed the maximum." });
    expect(validateLimits("", "5").minIdle).toBe("Required.");
    expect(validateLimits("1.5", "-1")).toEqual({
      minIdle: "A whole number, 0 or more.",
      maxVms: "A whole number, 0 or more.",
    });
    expect(validateLimits("10001", "100001")).toEqual({
      minIdle: "At most 10,000.",
      maxVms: "At most 100,000.",
    });
  });

  it("counts active VMs without the gone ones", () => {
    expect(
      poolCounts({ ...large, vms_by_status: { busy: 2, idle: 1, booting: 1, gone: 4 } }),
    ).toEqual({ active: 4, busy: 2, idle: 1, starting: 1 });
  });
});

describe("PoolsTile", () => {
  it("lists each pool with its limits, queue and VM counts", async () => {
    mockApi({ "/api/status": makeStatus({ pools: [makeStatus().pools[0] as Pool, large] }) });
    renderWithClient(<Tile />);
    await screen.findAllByTestId("pool-row");
    expect(row("default")).toHaveTextContent(
      "1/5 VMs · min idle 0 · 0 queued · 1 busy · 0 idle · 0 starting",
    );
    expect(row("large")).toHaveTextContent(
      "2/2 VMs · min idle 0 · 3 queued · 2 busy · 0 idle · 0 starting",
    );
    expect(within(screen.getByTestId("pools-panel")).getByText("starting VMs")).toBeInTheDocument();
  });

  it("shows the idle target of a pool sized from demand, and why", async () => {
    const adaptive = makePool({
      max_idle: 6,
      idle_target: 3,
      idle_reason: "p90 3 jobs per 30 s refill over the last 15 min",
      idle_vm_minutes_last_hour: 42,
    });
    mockApi({ "/api/status": makeStatus({ pools: [adaptive] }) });
    renderWithClient(<Tile />);
    const idle = await screen.findByTestId("pool-idle");
    expect(idle).toHaveTextContent("idle target 3 (0–6)");
    expect(idle).toHaveAttribute(
      "title",
      "p90 3 jobs per 30 s refill over the last 15 min; 42 idle VM-minutes in the last hour",
    );
    expect(idleWords(makePool({ min_idle: 2 }))).toBe("min idle 2");
  });

  it("pauses a pool and shows it paused; then resumes it", async () => {
    let paused: string[] = [];
    const pools = () => [
      { ...(makeStatus().pools[0] as Pool), paused: paused.includes("default") },
    ];
    const fetchMock = mockApi({
      "/api/status": () => makeStatus({ pools: pools() }),
      "/api/pools/default/pause": () => {
        paused = ["default"];
        return makeControl({ paused_pools: paused });
      },
      "/api/pools/default/resume": () => {
        paused = [];
        return makeControl();
      },
    });
    renderWithClient(<Tile />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Pause pool default" }));
    let dialog = screen.getByRole("dialog");
    expect(dialog).toHaveTextContent("Pause pool default?");
    await user.type(within(dialog).getByLabelText(/Reason/), "image rebuild");
    await user.click(within(dialog).getByRole("button", { name: "Pause pool" }));
    await waitFor(() => expect(row("default")).toHaveAttribute("data-paused", "true"));
    expect(within(row("default")).getByText("paused")).toBeInTheDocument();
    expect(within(screen.getByTestId("pools-panel")).getByText("1 paused")).toBeInTheDocument();
    expect(callsTo(fetchMock, "/api/pools/default/pause")[0]?.body).toEqual({
      reason: "image rebuild",
    });

    await user.click(screen.getByRole("button", { name: "Resume pool default" }));
    dialog = screen.getByRole("dialog");
    await user.click(within(dialog).getByRole("button", { name: "Resume pool" }));
    await waitFor(() => expect(row("default")).toHaveAttribute("data-paused", "false"));
  });

  it("explains a 403 on pause", async () => {
    mockApi({
      "/api/status": makeStatus(),
      "/api/pools/default/pause": () => json({ detail: "changes are disabled" }, 403),
    });
    renderWithClient(<Tile />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Pause pool default" }));
    const dialog = screen.getByRole("dialog");
    await user.click(within(dialog).getByRole("button", { name: "Pause pool" }));
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "operator actions are disabled on this server: set server.admin_token",
    );
    expect(row("default")).toHaveAttribute("data-paused", "false");
  });

  it("validates the limits as typed and saves only what changed", async () => {
    let minIdle = 0;
    const fetchMock = mockApi({
      "/api/status": () =>
        makeStatus({ pools: [{ ...(makeStatus().pools[0] as Pool), min_idle: minIdle }] }),
      "/api/pools/default": () => {
        minIdle = 2;
        return makeControl({
          pools: [{ name: "default", min_idle: 2, max_vms: 5, paused: false }],
        });
      },
    });
    renderWithClient(<Tile />);
    const { user, dialog, min, max, save } = await openLimits();
    expect(min).toHaveValue(0);
    expect(max).toHaveValue(5);
    expect(save).toBeDisabled(); // nothing changed yet
    await user.clear(min);
    await user.type(min, "7");
    expect(dialog).toHaveTextContent("Cannot exceed the maximum.");
    expect(min).toHaveAttribute("aria-invalid", "true");
    expect(save).toBeDisabled();
    await user.clear(min);
    await user.type(min, "2");
    expect(min).not.toHaveAttribute("aria-invalid");
    expect(save).toBeEnabled();
    await user.click(save);
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    expect(callsTo(fetchMock, "/api/pools/default", "PATCH")[0]?.body).toEqual({
      reason: "",
      min_idle: 2,
    });
    await waitFor(() => expect(row("default")).toHaveTextContent("min idle 2"));
  });

  it("shows the pending state, then the server's 422 message", async () => {
    const answer = deferred<Response>();
    mockApi({ "/api/status": makeStatus(), "/api/pools/default": () => answer.promise });
    renderWithClient(<Tile />);
    const { user, dialog, max } = await openLimits();
    await user.clear(max);
    await user.type(max, "3");
    await user.click(within(dialog).getByRole("button", { name: "Save" }));
    expect(within(dialog).getByRole("button", { name: "Saving…" })).toBeDisabled();
    answer.resolve(json({ detail: "min_idle cannot exceed max_vms" }, 422));
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "min_idle cannot exceed max_vms",
    );
    expect(within(dialog).getByRole("button", { name: "Save" })).toBeEnabled();
  });

  it("words FastAPI's validation errors (422 with a list)", async () => {
    mockApi({
      "/api/status": makeStatus(),
      "/api/pools/default": () =>
        json(
          {
            detail: [
              {
                type: "less_than_equal",
                loc: ["body", "max_vms"],
                msg: "Input should be less than or equal to 100000",
              },
            ],
          },
          422,
        ),
    });
    renderWithClient(<Tile />);
    const { user, dialog, max } = await openLimits();
    await user.clear(max);
    await user.type(max, "9");
    await user.click(within(dialog).getByRole("button", { name: "Save" }));
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "max_vms: Input should be less than or equal to 100000",
    );
  });

  it("shows no data, and no back-off warning, before the first status", () => {
    mockApi({});
    renderWithStatus(<PoolsTile />, undefined);
    expect(within(screen.getByTestId("pools-panel")).getByText("no data")).toBeInTheDocument();
    expect(screen.queryByTestId("pool-backoff")).not.toBeInTheDocument();
  });

  it("says so when no pool is configured", () => {
    mockApi({});
    renderWithStatus(<PoolsTile />, makeStatus({ pools: [] }));
    expect(screen.getByText("No pools configured.")).toBeInTheDocument();
    expect(screen.queryByTestId("pool-backoff")).not.toBeInTheDocument();
  });

  it("shows no warning for a pool whose starts succeed, or from a server without the field", async () => {
    const { start_backoff: _, ...older } = makePool({ name: "older" });
    mockApi({ "/api/status": makeStatus({ pools: [makePool(), older] }) });
    renderWithClient(<Tile />);
    await screen.findAllByTestId("pool-row");
    expect(row("default")).toHaveAttribute("data-backoff", "false");
    expect(row("older")).toHaveAttribute("data-backoff", "false");
    expect(screen.queryByTestId("pool-backoff")).not.toBeInTheDocument();
    expect(within(screen.getByTestId("pools-panel")).getByText("starting VMs")).toBeInTheDocument();
  });

  it("warns on a pool whose starts back off, with the reason, its fix and a live countdown", () => {
    vi.useFakeTimers();
    vi.setSystemTime(NOW * 1000);
    mockApi({});
    renderWithStatus(
      <PoolsTile />,
      makeStatus({ pools: [makePool({ start_backoff: makeStartBackoff() }), large] }),
    );
    expect(row("default")).toHaveAttribute("data-backoff", "true");
    expect(row("large")).toHaveAttribute("data-backoff", "false");
    expect(
      within(screen.getByTestId("pools-panel")).getByText("1 backing off"),
    ).toBeInTheDocument();
    const warning = within(row("default")).getByTestId("pool-backoff");
    expect(warning).toHaveTextContent("3 failed starts since");
    expect(warning).toHaveTextContent(
      "VM starts failing in pool default: kernel /x not found; fix: build it with blacksmith-mini image build or set [vm.firecracker] kernel_path",
    );
    expect(within(warning).getByText("blacksmith-mini image build").tagName).toBe("CODE");
    const countdown = screen.getByTestId("pool-backoff-countdown");
    expect(countdown).toHaveTextContent("next try in 40s");
    act(() => vi.advanceTimersByTime(15_000));
    expect(countdown).toHaveTextContent("next try in 25s");
    act(() => vi.advanceTimersByTime(30_000));
    expect(countdown).toHaveTextContent("retrying now");
    // The row keeps its controls.
    expect(
      within(row("default")).getByRole("button", { name: "Pause pool default" }),
    ).toBeEnabled();
  });

  it("says 1 failed start in the singular; draining still wins the badge", () => {
    mockApi({});
    renderWithStatus(
      <PoolsTile />,
      makeStatus({
        pools: [makePool({ start_backoff: makeStartBackoff({ failures: 1 }) })],
        draining: true,
      }),
    );
    expect(screen.getByTestId("pool-backoff")).toHaveTextContent("1 failed start since");
    expect(within(screen.getByTestId("pools-panel")).getByText("draining")).toBeInTheDocument();
  });
});
