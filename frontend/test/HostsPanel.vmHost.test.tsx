/** VMIdentity shows the host a VM runs on (many hosts), and nothing for one box. */
import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { VMIdentity } from "@/components/VMIdentity";
import { makeStatus, makeVm, makeVmDetail } from "./fixtures";
import { mockApi, renderWithStatus } from "./utils";

function renderVm(host: string | null) {
  const vm = makeVm({ host });
  mockApi({
    "/api/vms": { vms: [] },
    "/api/vms/1": makeVmDetail({ host }),
  });
  renderWithStatus(
    <VMIdentity selectedVmId={1} onSelectVm={() => {}} />,
    makeStatus({ vms: [vm] }),
  );
}

describe("VMIdentity host", () => {
  it("shows the VM's host in its card and in the list", async () => {
    renderVm("h2");
    expect(await screen.findByTestId("vm-host")).toHaveTextContent("h2");
    const item = screen.getByTestId("vm-list-item");
    expect(within(item).getByText(/· h2/)).toBeInTheDocument();
  });

  it("shows no host line for a VM of the in-process host", async () => {
    renderVm(null);
    await screen.findByTestId("vm-details");
    expect(screen.queryByTestId("vm-host")).not.toBeInTheDocument();
    expect(screen.queryByText("Host")).not.toBeInTheDocument();
  });
});
