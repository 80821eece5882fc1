import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { VMIdentity } from "@/components/VMIdentity";
import { formatClock } from "@/lib/format";
import { makeStatus, makeVm, makeVmDetail, NOW } from "./fixtures";
import {
  FakeEventSource,
  mockApi,
  networkDown,
  pending,
  renderWithStatus,
  seedStatus,
} from "./utils";

beforeEach(() => FakeEventSource.reset());

describe("VMIdentity", () => {
  it("shows skeletons while loading", () => {
    mockApi({ "/api/status": () => pending() });
    renderWithStatus(<VMIdentity selectedVmId={null} onSelectVm={() => {}} />, undefined);
    expect(screen.getByTestId("vm-details-skeleton")).toBeInTheDocument();
  });

  it("says what to do when no VM runs", async () => {
    mockApi({ "/api/vms": { vms: [] } });
    renderWithStatus(
      <VMIdentity selectedVmId={null} onSelectVm={() => {}} />,
      makeStatus({ vms: [], simulate: true }),
    );
    expect(
      screen.getByText("No VMs running: queue a job or check GitHub settings"),
    ).toBeInTheDocument();
    expect(screen.getByText(/Use “Queue a job” at the top right/)).toBeInTheDocument();
    expect(await screen.findByText("0 active · 0 recently gone")).toBeInTheDocument();
  });

  it("shows the error when the status stream is unavailable", async () => {
    mockApi({ "/api/status": () => networkDown() });
    renderWithStatus(<VMIdentity selectedVmId={null} onSelectVm={() => {}} />, undefined);
    act(() => FakeEventSource.latest().fail());
    expect(await screen.findByText("VM list unavailable")).toBeInTheDocument();
    expect(screen.getByText("Failed to fetch")).toBeInTheDocument();
  });

  it("shows the selected VM's identity, console tail and events; selects another", async () => {
    mockApi({
      "/api/vms/1": makeVmDetail(),
      "/api/vms/2": () => pending(),
      "/api/vms": { vms: [] },
    });
    const onSelectVm = vi.fn();
    const onSelectJob = vi.fn();
    const vms = [
      makeVm(),
      makeVm({ vm_id: 2, ip: "172.16.0.3", status: "idle", job_id: null, name: "bsm-default-2" }),
    ];
    renderWithStatus(
      <VMIdentity selectedVmId={1} onSelectVm={onSelectVm} onSelectJob={onSelectJob} />,
      makeStatus({ vms }),
    );
    const details = screen.getByTestId("vm-details");
    expect(details).toHaveTextContent("VM 1");
    expect(details).toHaveTextContent("172.16.0.2");
    expect(details).toHaveTextContent("4242");
    expect(details).toHaveTextContent("2 vCPU · 2 GiB");
    expect(details).toHaveTextContent("default");
    expect(await screen.findByText(/Listening for Jobs/)).toBeInTheDocument();
    expect(screen.getByText("runner online")).toBeInTheDocument();

    await userEvent.click(screen.getByRole("button", { name: "#101" }));
    expect(onSelectJob).toHaveBeenCalledWith(101);

    const item = (id: number) =>
      document.querySelector(`[data-testid="vm-list-item"][data-vm-id="${id}"]`);
    expect(item(1)).toHaveAttribute("aria-pressed", "true");
    expect(item(2)).toHaveAttribute("aria-pressed", "false");
    await userEvent.click(item(2) as HTMLElement);
    expect(onSelectVm).toHaveBeenCalledWith(2);
  });

  it("shows no kept notice nor badge for a VM that is not kept", async () => {
    mockApi({ "/api/vms/1": makeVmDetail(), "/api/vms": { vms: [] } });
    renderWithStatus(
      <VMIdentity selectedVmId={1} onSelectVm={() => {}} />,
      makeStatus({ vms: [makeVm()] }),
    );
    expect(await screen.findByText(/Listening for Jobs/)).toBeInTheDocument();
    expect(screen.queryByTestId("vm-kept")).not.toBeInTheDocument();
    expect(screen.queryByTestId("vm-kept-badge")).not.toBeInTheDocument();
  });

  it("says until when a VM kept after a failed job stays, and how to reach it", async () => {
    vi.spyOn(Date, "now").mockReturnValue(NOW * 1000);
    const keptUntil = NOW + 12 * 60 - 10;
    const kept = makeVm({ vm_id: 3, status: "idle", job_id: null, kept_until: keptUntil });
    const gone = makeVm({ vm_id: 4, status: "gone", kept_until: keptUntil, ended_at: NOW - 5 });
    mockApi({
      "/api/vms/3": makeVmDetail({ ...kept }),
      "/api/vms/1": makeVmDetail(),
      // The VM history: live VMs too (the stream's copy wins), and the gone one.
      "/api/vms?include_gone=true": { vms: [makeVm(), gone] },
    });
    renderWithStatus(
      <VMIdentity selectedVmId={3} onSelectVm={() => {}} />,
      makeStatus({ vms: [kept, makeVm()] }),
    );
    const notice = within(screen.getByTestId("vm-details")).getByTestId("vm-kept");
    expect(notice).toHaveTextContent(
      `kept until ${formatClock(keptUntil)} (12 min left) — blacksmith-mini ssh 3`,
    );
    expect(within(notice).getByText("blacksmith-mini ssh 3").tagName).toBe("CODE");
    expect(await screen.findByText(/Listening for Jobs/)).toBeInTheDocument();

    // Live VMs from the stream, then the gone one from the history.
    await waitFor(() => expect(screen.getAllByTestId("vm-list-item")).toHaveLength(3));
    expect(
      screen.getAllByTestId("vm-list-item").map((el) => el.getAttribute("data-vm-id")),
    ).toEqual(["3", "1", "4"]);
    expect(screen.getByText("2 active · 1 recently gone")).toBeInTheDocument();
    // Only the kept, live VM has the badge in the list (a gone VM cannot be reached).
    const badges = screen.getAllByTestId("vm-kept-badge");
    expect(badges).toHaveLength(1);
    expect(badges[0]?.closest("[data-vm-id]")).toHaveAttribute("data-vm-id", "3");
    expect(badges[0]).toHaveAttribute(
      "title",
      `Job failed: kept for blacksmith-mini ssh 3 until ${formatClock(keptUntil)}`,
    );
  });

  it("says when a kept VM's time is up", () => {
    vi.spyOn(Date, "now").mockReturnValue((NOW + 60) * 1000);
    mockApi({ "/api/vms/3": () => pending(), "/api/vms": () => pending() });
    renderWithStatus(
      <VMIdentity selectedVmId={3} onSelectVm={() => {}} />,
      makeStatus({ vms: [makeVm({ vm_id: 3, kept_until: NOW })] }),
    );
    expect(screen.getByTestId("vm-kept")).toHaveTextContent(
      `kept until ${formatClock(NOW)} (time is up)`,
    );
  });
});

describe("VMIdentity selection", () => {
  it("shows the first live VM when none is picked, and a gone one when none is live", async () => {
    mockApi({
      "/api/vms/2": makeVmDetail({ vm_id: 2 }),
      "/api/vms/9": makeVmDetail({ vm_id: 9, status: "gone" }),
      "/api/vms?include_gone=true": {
        vms: [makeVm({ vm_id: 9, status: "gone", ended_at: NOW - 30 })],
      },
    });
    const older = makeVm({ vm_id: 1, start_time: NOW - 600 });
    const newer = makeVm({ vm_id: 2, start_time: NOW - 60 });
    const { client } = renderWithStatus(
      <VMIdentity selectedVmId={null} onSelectVm={() => {}} />,
      makeStatus({ vms: [older, newer] }),
    );
    expect(screen.getByTestId("vm-details")).toHaveTextContent("VM 2");
    // The stream says both VMs are gone now: the history's gone VM is shown.
    act(() => seedStatus(client, makeStatus({ vms: [], active_vms_count: 0 })));
    await waitFor(() => expect(screen.getByTestId("vm-details")).toHaveTextContent("VM 9"));
  });
});
