import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { VMIdentity } from "@/components/VMIdentity";
import { makeVm, makeVmDetail } from "./fixtures";
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
});
