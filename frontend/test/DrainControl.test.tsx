import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { DrainControl, DrainingBanner } from "@/components/DrainControl";
import { queryKeys } from "@/lib/api/queries";
import { getAuthNeed, isAuthRequired } from "@/lib/api/token";
import type { StatusResponse } from "@/lib/api/types";
import { makeControl, makeStatus } from "./fixtures";
import { callsTo, deferred, json, mockApi, renderWithClient } from "./utils";

function Header() {
  return (
    <header>
      <DrainingBanner />
      <DrainControl />
    </header>
  );
}

async function openAndConfirm(reason?: string) {
  const user = userEvent.setup();
  await user.click(await screen.findByRole("button", { name: /^Drain$/ }));
  const dialog = screen.getByRole("dialog");
  expect(dialog).toHaveTextContent("Drain the control plane?");
  if (reason) await user.type(within(dialog).getByLabelText(/Reason/), reason);
  await user.click(within(dialog).getByRole("button", { name: "Drain" }));
  return { user, dialog };
}

describe("DrainControl", () => {
  it("is disabled until the first status arrives", () => {
    mockApi({});
    renderWithClient(<DrainControl />);
    expect(screen.getByTestId("drain-toggle")).toBeDisabled();
  });

  it("drains with the reason and name, then shows the banner and Resume", async () => {
    let draining = false;
    const fetchMock = mockApi({
      "/api/status": () => makeStatus({ draining }),
      "/api/control/drain": () => {
        draining = true;
        return makeControl({ draining: true });
      },
    });
    const { client } = renderWithClient(<Header />);
    expect(screen.queryByTestId("draining-banner")).not.toBeInTheDocument();
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: /^Drain$/ }));
    const dialog = screen.getByRole("dialog");
    expect(within(dialog).getByLabelText(/Reason/)).toHaveFocus();
    await user.type(within(dialog).getByLabelText(/Reason/), "kernel upgrade");
    await user.type(within(dialog).getByLabelText(/Your name/), "ana");
    await user.click(within(dialog).getByRole("button", { name: "Drain" }));

    expect(await screen.findByTestId("draining-banner")).toHaveTextContent("Draining: no new VMs");
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(screen.getByRole("button", { name: /^Resume$/ })).toBeInTheDocument();
    const [call] = callsTo(fetchMock, "/api/control/drain");
    expect(call?.body).toEqual({ reason: "kernel upgrade" });
    expect(call?.headers.get("X-Blacksmith-Actor")).toBe("ana");
    expect(window.sessionStorage.getItem("blacksmith-mini.actor")).toBe("ana");
    // The status is fetched again right away.
    await waitFor(() => expect(callsTo(fetchMock, "/api/status", "GET").length).toBe(2));
    expect(client.getQueryData<StatusResponse>(queryKeys.status)?.draining).toBe(true);
  });

  it("shows the pending state while the request runs", async () => {
    const answer = deferred<Response>();
    mockApi({ "/api/status": makeStatus(), "/api/control/drain": () => answer.promise });
    renderWithClient(<Header />);
    const { dialog } = await openAndConfirm();
    const busy = within(dialog).getByRole("button", { name: "Draining…" });
    expect(busy).toBeDisabled();
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toBeDisabled();
    answer.resolve(json(makeControl({ draining: true })));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
  });

  it("resumes when draining", async () => {
    let draining = true;
    const fetchMock = mockApi({
      "/api/status": () => makeStatus({ draining }),
      "/api/control/resume": () => {
        draining = false;
        return makeControl();
      },
    });
    renderWithClient(<Header />);
    expect(await screen.findByTestId("draining-banner")).toBeInTheDocument();
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: /^Resume$/ }));
    const dialog = screen.getByRole("dialog");
    expect(dialog).toHaveTextContent("Resume starting VMs?");
    await user.click(within(dialog).getByRole("button", { name: "Resume" }));
    await waitFor(() => expect(screen.queryByTestId("draining-banner")).not.toBeInTheDocument());
    expect(callsTo(fetchMock, "/api/control/resume")[0]?.body).toEqual({ reason: "" });
    expect(callsTo(fetchMock, "/api/control/resume")[0]?.headers.has("X-Blacksmith-Actor")).toBe(
      false,
    );
  });

  it("explains a 403: changes are disabled on this server", async () => {
    mockApi({
      "/api/status": makeStatus(),
      "/api/control/drain": () =>
        json(
          {
            detail: "changes are disabled: set server.admin_token to allow operator actions",
          },
          403,
        ),
    });
    renderWithClient(<Header />);
    const { dialog } = await openAndConfirm();
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "operator actions are disabled on this server: set server.admin_token",
    );
    expect(screen.queryByTestId("draining-banner")).not.toBeInTheDocument();
    expect(within(dialog).getByRole("button", { name: "Drain" })).toBeEnabled();
  });

  it("asks for the admin token on a 401", async () => {
    mockApi({
      "/api/status": makeStatus(),
      "/api/control/drain": () =>
        json({ detail: "missing or wrong admin token: send 'Authorization: Bearer <token>'" }, 401),
    });
    renderWithClient(<Header />);
    const { dialog } = await openAndConfirm();
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(/needs the admin token/);
    expect(isAuthRequired()).toBe(true);
    expect(getAuthNeed()).toBe("admin");
  });

  it("says so when the API cannot be reached", async () => {
    mockApi({
      "/api/status": makeStatus(),
      "/api/control/drain": () => {
        throw new TypeError("Failed to fetch");
      },
    });
    renderWithClient(<Header />);
    const { dialog } = await openAndConfirm();
    expect(await within(dialog).findByRole("alert")).toHaveTextContent(
      "Could not reach the API: Failed to fetch",
    );
  });
});
