import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { JobRunsTimeline } from "@/components/JobRunsTimeline";
import {
  makeEmptyStatus,
  makeJob,
  makePool,
  makeRepository,
  makeStartBackoff,
  makeStatus,
  NOW,
} from "./fixtures";
import { json, mockApi, pending, renderWithStatus } from "./utils";

describe("JobRunsTimeline", () => {
  it("shows skeleton rows while loading", () => {
    mockApi({ "/api/jobs": () => pending(), "/api/status": () => pending() });
    renderWithStatus(<JobRunsTimeline onSelectJob={() => {}} />, undefined);
    expect(screen.getByTestId("timeline-skeleton")).toBeInTheDocument();
  });

  it("says what to do when there are no jobs", async () => {
    mockApi({ "/api/jobs": { jobs: [] } });
    renderWithStatus(<JobRunsTimeline onSelectJob={() => {}} />, makeEmptyStatus());
    expect(await screen.findByText("No jobs yet")).toBeInTheDocument();
    expect(screen.getByText(/queue one with the simulator/)).toBeInTheDocument();
  });

  it("shows an error when jobs cannot be loaded", async () => {
    mockApi({ "/api/jobs": json({ detail: "database is locked" }, 503) });
    renderWithStatus(<JobRunsTimeline onSelectJob={() => {}} />, makeEmptyStatus());
    expect(
      await screen.findByText("Could not load jobs", {}, { timeout: 4000 }),
    ).toBeInTheDocument();
    expect(screen.getByText(/database is locked/)).toBeInTheDocument();
  });

  it("draws each job's stages, reasons, and opens a job on click", async () => {
    vi.spyOn(Date, "now").mockReturnValue(NOW * 1000);
    const done = makeJob({
      id: 1,
      name: "lint",
      status: "completed",
      conclusion: "failure",
      stages: {
        queued: NOW - 300,
        vm_requested: NOW - 299,
        vm_ready: NOW - 290,
        started: NOW - 288,
        completed: NOW - 200,
      },
    });
    const queued = makeJob({
      id: 2,
      name: "deploy",
      status: "queued",
      vm_id: null,
      waiting_reason: "pool default is at max_vms (5)",
      stages: {
        queued: NOW - 30,
        vm_requested: null,
        vm_ready: null,
        started: null,
        completed: null,
      },
    });
    const unmatched = makeJob({
      id: 3,
      name: "gpu-test",
      status: "queued",
      vm_id: null,
      labels: ["gpu"],
      unmatched_reason: "no pool has labels [gpu]",
      stages: {
        queued: NOW - 60,
        vm_requested: null,
        vm_ready: null,
        started: null,
        completed: null,
      },
    });
    mockApi({ "/api/jobs?limit=100": { jobs: [done] } });
    const onSelectJob = vi.fn();
    renderWithStatus(
      <JobRunsTimeline onSelectJob={onSelectJob} />,
      // As the server sends it: an unmatched job is a queued job too (listed once).
      makeStatus({ queued_jobs: [queued, unmatched], unmatched_jobs: [unmatched] }),
    );
    await waitFor(() => expect(screen.getAllByTestId("timeline-job")).toHaveLength(4));
    expect(screen.getByText("pool default is at max_vms (5)")).toBeInTheDocument();
    expect(screen.getByText("no pool has labels [gpu]")).toBeInTheDocument();

    const lint = screen.getByRole("button", { name: /Job lint \(failure\)/ });
    const stages = [...lint.querySelectorAll("[data-stage]")].map((el) =>
      el.getAttribute("data-stage"),
    );
    expect(stages).toEqual(["waiting", "booting", "online", "running"]);
    expect(lint.querySelector('[data-stage="running"]')).toHaveClass("bg-red-500");

    const running = screen.getByRole("button", { name: /Job build \(in progress\)/ });
    expect(running.querySelector('[data-stage="running"]')).toHaveClass("bar-live");

    await userEvent.click(lint);
    expect(onSelectJob).toHaveBeenCalledWith(1);
  });

  it("marks a job waiting on failing starts or an unhealthy repository, not one waiting for capacity", async () => {
    vi.spyOn(Date, "now").mockReturnValue(NOW * 1000);
    const stages = {
      queued: NOW - 30,
      vm_requested: null,
      vm_ready: null,
      started: null,
      completed: null,
    };
    const backoff =
      "VM starts in pool default are backing off after 3 failures (kernel /x not found); next try in 40s";
    const onDefault = makeJob({
      id: 2,
      name: "deploy",
      status: "queued",
      vm_id: null,
      waiting_reason: backoff,
      stages,
    });
    const onOld = makeJob({
      id: 3,
      name: "release",
      repository: "acme/old",
      pool: "large",
      status: "queued",
      vm_id: null,
      waiting_reason: "repository acme/old is unhealthy: 404 Not Found",
      stages,
    });
    const onLarge = makeJob({
      id: 4,
      name: "bench",
      pool: "large",
      status: "queued",
      vm_id: null,
      waiting_reason: "pool large is at max_vms (2)",
      stages,
    });
    mockApi({ "/api/jobs?limit=100": { jobs: [] } });
    const status = makeStatus({
      queued_jobs: [onDefault, onOld, onLarge],
      pools: [
        makePool({ start_backoff: makeStartBackoff() }),
        makePool({ name: "large", max_vms: 2 }),
      ],
    });
    status.github.repositories = [
      makeRepository(),
      makeRepository({ name: "acme/old", healthy: false, error: "404 Not Found" }),
    ];
    renderWithStatus(<JobRunsTimeline onSelectJob={() => {}} />, status);
    await waitFor(() => expect(screen.getAllByTestId("timeline-job")).toHaveLength(4));
    const reason = (text: string) => screen.getByTitle(text);
    expect(reason(backoff)).toHaveAttribute("data-blocked", "true");
    expect(reason(backoff)).toHaveClass("text-amber-400");
    expect(reason("repository acme/old is unhealthy: 404 Not Found")).toHaveAttribute(
      "data-blocked",
      "true",
    );
    expect(reason("pool large is at max_vms (2)")).not.toHaveAttribute("data-blocked");
    expect(reason("pool large is at max_vms (2)")).toHaveClass("text-muted-foreground");
  });
});
