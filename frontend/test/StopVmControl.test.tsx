import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { VMIdentity } from "@/components/VMIdentity";
import { queryKeys } from "@/lib/api/queries";
import type { Vm } from "@/lib/api/types";
import { makeStatus, makeVm, makeVmDetail } from "./fixtures";
import { callsTo, deferred, json, makeTestQueryClient, mockApi, renderWithStatus } from "./utils";

const idle = makeVm({ vm_id: 2, status: "idle", job_id: null, name: "bsm-default-2" });
const busy = makeVm({ vm_id: 1, status: "busy", job_id: 101 });
const gone = makeVm({ vm_id: 3, status: "gone", job_id: null, ended_at: 1, name: "bsm-3" });

/** The VM live in the stream, or (gone) in the VM history. */
function renderVm(vm: Vm) {
  const client = makeTestQueryClient();
  client.setQueryDefaults(queryKeys.vms, { staleTime: Number.POSITIVE_INFINITY });
  client.setQueryData(queryKeys.vms, { vms: vm.status === "gone" ? [vm] : [] });
  return renderWithStatus(
    <VMIdentity selectedVmId={vm.vm_id} onSelectVm={() => {}} />,
    makeStatus({ vms: vm.status === "gone" ? [] : [vm] }),
    client,
  );
}

async function openStop() {
  const user = userEvent.setup();
  await user.click(screen.getByRole("button", { name: /Stop VM/ }));
  return { user, dialog: screen.getByRole("dialog") };
}

const BUSY_DETAIL =
  "VM 1 is running job 101: stopping it fails the job; wait for it, drain, or repeat with force=true";

describe("StopVmControl", () => {
  it("is offered only for active VMs", () => {
    mockApi({ "/api/vms/3": makeVmDetail({ ...gone }) });
    renderVm(gone);
    expect(screen.getByTestId("vm-details")).toHaveTextContent("VM 3");
    expect(screen.queryByRole("button", { name: /Stop VM/ })).not.toBeInTheDocument();
  });

  it("stops an idle VM with the reason, then refreshes the VM", async () => {
    let status: Vm["status"] = "idle";
    const fetchMock = mockApi({
      "/api/vms/2": () => makeVmDetail({ ...idle, status }),
      "/api/vms/2/stop": () => {
        status = "stopping";
        return { ...idle, status };
      },
    });
    renderVm(idle);
    const { user, dialog } = await openStop();
    expect(dialog).toHaveTextContent("Stop VM 2?");
    await user.type(within(dialog).getByLabelText(/Reason/), "stuck runner");
    await user.click(within(dialog).getByRole("button", { name: "Stop VM" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    expect(callsTo(fetchMock, "/api/vms/2/stop")).toEqual([
      expect.objectContaining({ body: { reason: "stuck runner", force: false } }),
    ]);
    await waitFor(() =>
      expect(within(screen.getByTestId("vm-details")).getByText("stopping")).toBeInTheDocument(),
    );
    expect(screen.getByText("Stop requested for VM 2")).toBeInTheDocument();
  });

  it("shows the pending state", async () => {
    const answer = deferred<Response>();
    mockApi({ "/api/vms/2": makeVmDetail({ ...idle }), "/api/vms/2/stop": () => answer.promise });
    renderVm(idle);
    const { user, dialog } = await openStop();
    await user.click(within(dialog).getByRole("button", { name: "Stop VM" }));
    expect(within(dialog).getByRole("button", { name: "Stopping…" })).toBeDisabled();
    answer.resolve(json({ ...idle, status: "stopping" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
  });

  it("on 409 shows why and offers Stop anyway, which forces it", async () => {
    const fetchMock = mockApi({
      "/api/vms/1": makeVmDetail(),
      "/api/vms/1/stop": ({ init }: { init: RequestInit }) => {
        const { force } = JSON.parse(String(init.body)) as { force: boolean };
        return force ? { ...busy, status: "stopping" } : json({ detail: BUSY_DETAIL }, 409);
      },
    });
    renderVm(busy);
    const { user, dialog } = await openStop();
    expect(dialog).toHaveTextContent("running job #101");
    expect(within(dialog).queryByRole("button", { name: /Stop anyway/ })).not.toBeInTheDocument();
    await user.type(within(dialog).getByLabelText(/Reason/), "hung build");
    await user.click(within(dialog).getByRole("button", { name: "Stop VM" }));
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(BUSY_DETAIL);
    expect(within(dialog).getByRole("button", { name: "Stop VM" })).toBeDisabled();
    await user.click(within(dialog).getByRole("button", { name: "Stop anyway (job fails)" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    expect(callsTo(fetchMock, "/api/vms/1/stop").map((call) => call.body)).toEqual([
      { reason: "hung build", force: false },
      { reason: "hung build", force: true },
    ]);
  });

  it("explains a 403 and a 404", async () => {
    let code = 403;
    mockApi({
      "/api/vms/2": makeVmDetail({ ...idle }),
      "/api/vms/2/stop": () =>
        code === 403
          ? json({ detail: "changes are disabled: set server.admin_token" }, 403)
          : json({ detail: "VM 2 is not running" }, 404),
    });
    renderVm(idle);
    const { user, dialog } = await openStop();
    await user.click(within(dialog).getByRole("button", { name: "Stop VM" }));
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "operator actions are disabled on this server: set server.admin_token",
    );
    expect(within(dialog).queryByRole("button", { name: /Stop anyway/ })).not.toBeInTheDocument();
    code = 404;
    await user.click(within(dialog).getByRole("button", { name: "Stop VM" }));
    await waitFor(() =>
      expect(within(dialog).getByRole("alert")).toHaveTextContent("VM 2 is not running"),
    );
  });
});
