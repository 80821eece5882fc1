import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import OverviewPage from "@/app/page";
import { makeHistory, makeJob, makeJobDetail, makeStatus, makeVmDetail } from "./fixtures";
import { FakeEventSource, mockApi, networkDown, renderWithClient } from "./utils";

beforeEach(() => {
  FakeEventSource.reset();
  vi.stubGlobal("EventSource", FakeEventSource);
  window.history.replaceState(null, "", "/");
});

describe("OverviewPage", () => {
  it("shows the API Connection Error while the API is down and recovers by itself", async () => {
    let up = false;
    mockApi({
      "/api/status": () => (up ? makeStatus() : networkDown()),
      "/api/history": () => (up ? makeHistory() : networkDown()),
      "/api/jobs": () => (up ? { jobs: [makeJob()] } : networkDown()),
      "/api/vms": () => (up ? { vms: makeStatus().vms } : networkDown()),
      "/api/vms/1": () => makeVmDetail(),
    });
    renderWithClient(<OverviewPage />);
    act(() => FakeEventSource.latest().fail());
    expect(
      await screen.findByRole("heading", { name: "API Connection Error" }),
    ).toBeInTheDocument();
    expect(screen.getByTestId("connection-indicator")).toHaveAttribute("data-mode", "offline");

    up = true;
    await waitFor(() => expect(FakeEventSource.instances.length).toBe(2), { timeout: 2500 });
    act(() => {
      FakeEventSource.latest().open();
      FakeEventSource.latest().push("status", makeStatus({ snapshot_version: 2 }));
    });
    await waitFor(() =>
      expect(
        screen.queryByRole("heading", { name: "API Connection Error" }),
      ).not.toBeInTheDocument(),
    );
    expect(screen.getByTestId("connection-indicator")).toHaveAttribute("data-mode", "live");
    expect(screen.getByTestId("stat-active-vms-value")).toHaveTextContent("1");
  });

  it("selects the first active VM by default and opens a job's details from the timeline", async () => {
    mockApi({
      "/api/status": makeStatus(),
      "/api/history": makeHistory(),
      "/api/jobs": { jobs: [makeJob()] },
      "/api/vms": { vms: makeStatus().vms },
      "/api/vms/1": makeVmDetail(),
      "/api/jobs/101": makeJobDetail(),
    });
    renderWithClient(<OverviewPage />);
    const vmPanel = await screen.findByTestId("vm-details");
    expect(vmPanel).toHaveTextContent("VM 1");
    expect(screen.getByRole("button", { name: /Queue a job/ })).toBeInTheDocument();

    await userEvent.click(await screen.findByRole("button", { name: /Job build/ }));
    const details = await screen.findByTestId("job-details");
    expect(within(details).getByRole("link", { name: /Run #9001/ })).toBeInTheDocument();
    expect(window.location.search).toBe("?job=101");
  });

  it("shows the draining banner and Resume as soon as a snapshot says draining", async () => {
    mockApi({
      "/api/status": makeStatus(),
      "/api/history": makeHistory(),
      "/api/jobs": { jobs: [makeJob()] },
      "/api/vms": { vms: makeStatus().vms },
      "/api/vms/1": makeVmDetail(),
    });
    renderWithClient(<OverviewPage />);
    await waitFor(() => expect(screen.getByRole("button", { name: /^Drain$/ })).toBeEnabled());
    expect(screen.queryByTestId("draining-banner")).not.toBeInTheDocument();
    expect(
      within(screen.getByTestId("vm-details")).getByRole("button", { name: /Stop VM/ }),
    ).toBeInTheDocument();
    act(() => {
      FakeEventSource.latest().open();
      FakeEventSource.latest().push("status", makeStatus({ draining: true, snapshot_version: 2 }));
    });
    expect(await screen.findByTestId("draining-banner")).toHaveTextContent("Draining: no new VMs");
    expect(screen.getByRole("button", { name: /^Resume$/ })).toBeInTheDocument();
    expect(screen.getByTestId("pools-panel")).toHaveTextContent("draining");
  });
});
