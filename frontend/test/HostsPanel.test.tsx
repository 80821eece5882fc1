/** HostsPanel: the hosts table from `GET /api/hosts`, a down host's reason, the host actions. */
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { HostsPanel, hostsSummary } from "@/components/HostsPanel";
import type { Host, HostList } from "@/components/HostsPanelQuery";
import { hostActions } from "@/components/HostsPanelQuery";
import { NOW } from "./fixtures";
import { callsTo, json, mockApi, networkDown, pending, renderWithClient } from "./utils";

function makeHost(overrides: Partial<Host> = {}): Host {
  return {
    name: "h1",
    state: "up",
    admin_state: "up",
    in_process: false,
    arch: "x64",
    drivers: ["local"],
    capacity: { vcpus: 16, memory_mib: 65_536, disk_mib: 100_000 },
    reserved: { vcpus: 6, memory_mib: 12_288, disk_mib: 0 },
    vms: 3,
    heartbeat_age_seconds: 0.4,
    versions: { agent: "0.1.0", kernel: "6.1.0" },
    down_since: null,
    down_reason: null,
    created_at: NOW - 3600,
    ...overrides,
  };
}

function makeHostList(hosts: Host[], overrides: Partial<HostList> = {}): HostList {
  return { hosts, lease_seconds: 4, placement: "spread", ...overrides };
}

function row(name: string): HTMLElement {
  const found = screen
    .getAllByTestId("host-row")
    .find((element) => element.getAttribute("data-host") === name);
  if (!found) throw new Error(`no row for host ${name}`);
  return found;
}

describe("HostsPanel", () => {
  it("shows a skeleton while loading", () => {
    mockApi({ "/api/hosts": () => pending() });
    renderWithClient(<HostsPanel />, undefined, { statusStream: false });
    expect(screen.getByTestId("hosts-skeleton")).toBeInTheDocument();
  });

  it("lists every host with its state, capacity, reserved, VMs and versions", async () => {
    mockApi({
      "/api/hosts": makeHostList([
        makeHost(),
        makeHost({ name: "h2", state: "cordoned", admin_state: "cordoned", vms: 0 }),
      ]),
    });
    renderWithClient(<HostsPanel />, undefined, { statusStream: false });
    await screen.findByTestId("hosts-table");
    const h1 = row("h1");
    expect(within(h1).getByTestId("host-state")).toHaveTextContent("up");
    expect(within(h1).getByTestId("host-vcpus")).toHaveTextContent("6/16 vCPUs");
    expect(within(h1).getByTestId("host-memory")).toHaveTextContent("12/64 GiB");
    expect(within(h1).getByTestId("host-vms")).toHaveTextContent("3");
    expect(within(h1).getByText("agent 0.1.0 · kernel 6.1.0")).toBeInTheDocument();
    expect(within(h1).getByText("x64 · local")).toBeInTheDocument();
    expect(within(row("h2")).getByTestId("host-state")).toHaveTextContent("cordoned");
    expect(screen.getByTestId("hosts-summary")).toHaveTextContent(
      "2 hosts · 1 up · 1 cordoned · placement spread · lease 4s",
    );
  });

  it("shows a down host in red with its reason and since when", async () => {
    mockApi({
      "/api/hosts": makeHostList([
        makeHost({
          state: "down",
          heartbeat_age_seconds: 9,
          down_since: NOW - 5,
          down_reason: "no heartbeat for 5 s",
        }),
      ]),
    });
    renderWithClient(<HostsPanel />, undefined, { statusStream: false });
    const badge = await screen.findByTestId("host-state");
    expect(badge).toHaveTextContent("down");
    expect(badge.className).toContain("text-red-400");
    const reason = screen.getByTestId("host-down-reason");
    expect(reason).toHaveTextContent("no heartbeat for 5 s");
    expect(reason).toHaveTextContent(/since \d\d:\d\d:\d\d/);
  });

  it("cordons a host with the reason, then refreshes the list", async () => {
    let state: Host["admin_state"] = "up";
    const current = () => makeHost({ state, admin_state: state });
    const fetchMock = mockApi({
      "/api/hosts": () => makeHostList([current()]),
      "/api/hosts/h1/cordon": () => {
        state = "cordoned";
        return current();
      },
    });
    renderWithClient(<HostsPanel />, undefined, { statusStream: false });
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Cordon host h1" }));
    const dialog = screen.getByRole("dialog");
    expect(dialog).toHaveTextContent("Cordon host h1?");
    await user.type(within(dialog).getByLabelText(/Reason/), "kernel upgrade");
    await user.click(within(dialog).getByRole("button", { name: "Cordon" }));

    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    expect(within(row("h1")).getByTestId("host-state")).toHaveTextContent("cordoned");
    expect(within(row("h1")).getByRole("button", { name: "Uncordon host h1" })).toBeVisible();
    const calls = callsTo(fetchMock, "/api/hosts/h1/cordon");
    expect(calls).toHaveLength(1);
    expect(calls[0]?.body).toEqual({ reason: "kernel upgrade" });
    await waitFor(() => expect(callsTo(fetchMock, "/api/hosts", "GET").length).toBe(2));
  });

  it("shows the API's detail when an action is refused", async () => {
    mockApi({
      "/api/hosts": makeHostList([makeHost()]),
      "/api/hosts/h1/drain": json({ detail: "no host named 'h1'" }, 404),
    });
    renderWithClient(<HostsPanel />, undefined, { statusStream: false });
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Drain host h1" }));
    const dialog = screen.getByRole("dialog");
    await user.click(within(dialog).getByRole("button", { name: "Drain" }));
    expect(await within(dialog).findByTestId("operator-error")).toHaveTextContent(
      "no host named 'h1'",
    );
  });

  it("offers no actions on the in-process host", async () => {
    mockApi({
      "/api/hosts": makeHostList([
        makeHost({ name: "box", in_process: true, heartbeat_age_seconds: 0 }),
      ]),
    });
    renderWithClient(<HostsPanel />, undefined, { statusStream: false });
    await screen.findByTestId("hosts-table");
    expect(within(row("box")).queryAllByRole("button")).toHaveLength(0);
    expect(within(row("box")).getByText("in process")).toBeInTheDocument();
  });

  it("shows the API's detail when the list cannot be loaded", async () => {
    mockApi({ "/api/hosts": json({ detail: "store unavailable" }, 400) });
    renderWithClient(<HostsPanel />, undefined, { statusStream: false });
    const alert = await screen.findByRole("alert");
    expect(within(alert).getByText("Could not load hosts")).toBeInTheDocument();
    expect(within(alert).getByText("store unavailable")).toBeInTheDocument();
  });

  it("shows an error when the API is down", async () => {
    mockApi({ "/api/hosts": () => networkDown() });
    renderWithClient(<HostsPanel />, undefined, { statusStream: false });
    expect(await screen.findByText("Could not load hosts", {}, { timeout: 5000 })).toBeVisible();
  });
});

describe("hostActions", () => {
  it("offers what the operator state allows", () => {
    expect(hostActions(makeHost())).toEqual(["cordon", "drain"]);
    expect(hostActions(makeHost({ admin_state: "cordoned" }))).toEqual(["uncordon", "drain"]);
    expect(hostActions(makeHost({ admin_state: "draining" }))).toEqual(["uncordon"]);
    expect(hostActions(makeHost({ state: "revoked" }))).toEqual([]);
    expect(hostActions(makeHost({ in_process: true }))).toEqual([]);
  });

  it("summarises the list", () => {
    expect(hostsSummary(makeHostList([makeHost()], { placement: "pack" }))).toBe(
      "1 host · 1 up · placement pack · lease 4s",
    );
  });
});
