import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { VMIdentity } from "@/components/VMIdentity";
import { formatClock } from "@/lib/format";
import { makeVm, makeVmDetail, NOW } from "./fixtures";
import { mockApi, pending, renderWithClient } from "./utils";

describe("VMIdentity", () => {
  it("shows skeletons while loading", () => {
    mockApi({});
    renderWithClient(<VMIdentity vms={[]} isLoading selectedVmId={null} onSelectVm={() => {}} />);
    expect(screen.getByTestId("vm-details-skeleton")).toBeInTheDocument();
  });

  it("says what to do when no VM runs", () => {
    mockApi({});
    renderWithClient(
      <VMIdentity vms={[]} isLoading={false} selectedVmId={null} onSelectVm={() => {}} />,
    );
    expect(
      screen.getByText("No VMs running: queue a job or check GitHub settings"),
    ).toBeInTheDocument();
  });

  it("shows the error when the VM list is unavailable", () => {
    mockApi({});
    renderWithClient(
      <VMIdentity
        vms={[]}
        isLoading={false}
        error={new Error("Failed to fetch")}
        selectedVmId={null}
        onSelectVm={() => {}}
      />,
    );
    expect(screen.getByText("VM list unavailable")).toBeInTheDocument();
    expect(screen.getByText("Failed to fetch")).toBeInTheDocument();
  });

  it("shows the selected VM's identity, console tail and events; selects another", async () => {
    mockApi({ "/api/vms/1": makeVmDetail(), "/api/vms/2": () => pending() });
    const onSelectVm = vi.fn();
    const onSelectJob = vi.fn();
    const vms = [
      makeVm(),
      makeVm({ vm_id: 2, ip: "172.16.0.3", status: "idle", job_id: null, name: "bsm-default-2" }),
    ];
    renderWithClient(
      <VMIdentity
        vms={vms}
        isLoading={false}
        selectedVmId={1}
        onSelectVm={onSelectVm}
        onSelectJob={onSelectJob}
      />,
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

    const items = screen.getAllByTestId("vm-list-item");
    expect(items[0]).toHaveAttribute("aria-pressed", "true");
    await userEvent.click(items[1] as HTMLElement);
    expect(onSelectVm).toHaveBeenCalledWith(2);
  });

  it("shows no kept notice nor badge for a VM that is not kept", async () => {
    mockApi({ "/api/vms/1": makeVmDetail() });
    renderWithClient(
      <VMIdentity vms={[makeVm()]} isLoading={false} selectedVmId={1} onSelectVm={() => {}} />,
    );
    expect(await screen.findByText(/Listening for Jobs/)).toBeInTheDocument();
    expect(screen.queryByTestId("vm-kept")).not.toBeInTheDocument();
    expect(screen.queryByTestId("vm-kept-badge")).not.toBeInTheDocument();
  });

  it("says until when a VM kept after a failed job stays, and how to reach it", async () => {
    vi.spyOn(Date, "now").mockReturnValue(NOW * 1000);
    const keptUntil = NOW + 12 * 60 - 10;
    const kept = makeVm({ vm_id: 3, status: "idle", job_id: null, kept_until: keptUntil });
    mockApi({ "/api/vms/3": makeVmDetail({ ...kept }), "/api/vms/1": makeVmDetail() });
    renderWithClient(
      <VMIdentity
        vms={[kept, makeVm(), makeVm({ vm_id: 4, status: "gone", kept_until: keptUntil })]}
        isLoading={false}
        selectedVmId={3}
        onSelectVm={() => {}}
      />,
    );
    const notice = within(screen.getByTestId("vm-details")).getByTestId("vm-kept");
    expect(notice).toHaveTextContent(
      `kept until ${formatClock(keptUntil)} (12 min left) — blacksmith-mini ssh 3`,
    );
    expect(within(notice).getByText("blacksmith-mini ssh 3").tagName).toBe("CODE");
    expect(await screen.findByText(/Listening for Jobs/)).toBeInTheDocument();

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
    mockApi({ "/api/vms/3": () => pending() });
    renderWithClient(
      <VMIdentity
        vms={[makeVm({ vm_id: 3, kept_until: NOW })]}
        isLoading={false}
        selectedVmId={3}
        onSelectVm={() => {}}
      />,
    );
    expect(screen.getByTestId("vm-kept")).toHaveTextContent(
      `kept until ${formatClock(NOW)} (time is up)`,
    );
  });
});
