import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { JobRunsTimeline } from "@/components/JobRunsTimeline";
import { makeEmptyStatus, makeJob, makeStatus, NOW } from "./fixtures";
import { json, mockApi, pending, renderWithClient } from "./utils";

describe("JobRunsTimeline", () => {
  it("shows skeleton rows while loading", () => {
    mockApi({ "/api/jobs": () => pending() });
    renderWithClient(<JobRunsTimeline status={undefined} statusLoading onSelectJob={() => {}} />);
    expect(screen.getByTestId("timeline-skeleton")).toBeInTheDocument();
  });

  it("says what to do when there are no jobs", async () => {
    mockApi({ "/api/jobs": { jobs: [] } });
    renderWithClient(<JobRunsTimeline status={makeEmptyStatus()} onSelectJob={() => {}} />);
    expect(await screen.findByText("No jobs yet")).toBeInTheDocument();
    expect(screen.getByText(/queue one with the simulator/)).toBeInTheDocument();
  });

  it("shows an error when jobs cannot be loaded", async () => {
    mockApi({ "/api/jobs": json({ detail: "database is locked" }, 503) });
    renderWithClient(<JobRunsTimeline status={makeEmptyStatus()} onSelectJob={() => {}} />);
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
    renderWithClient(
      <JobRunsTimeline
        status={makeStatus({ queued_jobs: [queued], unmatched_jobs: [unmatched] })}
        onSelectJob={onSelectJob}
      />,
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
});
