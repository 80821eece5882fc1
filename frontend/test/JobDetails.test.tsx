import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { JobDetails } from "@/components/JobDetails";
import { makeJobDetail } from "./fixtures";
import { json, mockApi, pending, renderWithClient } from "./utils";

describe("JobDetails", () => {
  it("renders nothing when no job is selected", () => {
    mockApi({});
    renderWithClient(<JobDetails jobId={null} onClose={() => {}} />);
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
  });

  it("shows a skeleton while the job loads", () => {
    mockApi({ "/api/jobs/101": () => pending() });
    renderWithClient(<JobDetails jobId={101} onClose={() => {}} />);
    expect(screen.getByTestId("job-details-skeleton")).toBeInTheDocument();
  });

  it("shows links, labels, stage times, VM and events", async () => {
    mockApi({ "/api/jobs/101": makeJobDetail() });
    const onSelectVm = vi.fn();
    renderWithClient(<JobDetails jobId={101} onClose={() => {}} onSelectVm={onSelectVm} />);
    const panel = await screen.findByTestId("job-details");
    expect(within(panel).getByRole("link", { name: /Run #9001/ })).toHaveAttribute(
      "href",
      "https://github.com/acme/app/actions/runs/9001",
    );
    expect(within(panel).getByRole("link", { name: /Job on GitHub/ })).toHaveAttribute(
      "href",
      "https://github.com/acme/app/actions/runs/9001/job/101",
    );
    expect(panel).toHaveTextContent("success");
    expect(panel).toHaveTextContent("self-hosted");
    const durations = screen.getByTestId("job-stage-durations");
    expect(durations).toHaveTextContent("waiting for a VM");
    expect(durations).toHaveTextContent("VM booting9.0s");
    expect(durations).toHaveTextContent("running1m 00s");
    expect(panel).toHaveTextContent("job.completed");
    await userEvent.click(within(panel).getByRole("button", { name: "VM 1" }));
    expect(onSelectVm).toHaveBeenCalledWith(1);
  });

  it("prefers html_url for the job link", async () => {
    mockApi({
      "/api/jobs/101": makeJobDetail({
        html_url: "https://github.com/acme/app/actions/runs/9001/job/555",
      }),
    });
    renderWithClient(<JobDetails jobId={101} onClose={() => {}} />);
    expect(await screen.findByRole("link", { name: /Job on GitHub/ })).toHaveAttribute(
      "href",
      "https://github.com/acme/app/actions/runs/9001/job/555",
    );
  });

  it("shows an error when the job cannot be loaded, and closes", async () => {
    mockApi({ "/api/jobs/101": json({ detail: "job not found" }, 404) });
    const onClose = vi.fn();
    renderWithClient(<JobDetails jobId={101} onClose={onClose} />);
    expect(await screen.findByText(/Could not load this job/)).toHaveTextContent("job not found");
    await userEvent.click(screen.getByRole("button", { name: "Close" }));
    expect(onClose).toHaveBeenCalled();
  });
});
