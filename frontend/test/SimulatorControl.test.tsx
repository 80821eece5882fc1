import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { parseLabels, SimulatorControl } from "@/components/SimulatorControl";
import { callsTo, json, mockApi, renderWithClient } from "./utils";

describe("parseLabels", () => {
  it("splits on commas, trims, drops empties, and is undefined when empty", () => {
    expect(parseLabels(" self-hosted, linux ,, x64 ")).toEqual(["self-hosted", "linux", "x64"]);
    expect(parseLabels("  ")).toBeUndefined();
  });
});

describe("SimulatorControl", () => {
  it("queues a job with the chosen labels, duration and conclusion", async () => {
    const fetchMock = mockApi({
      "/api/simulator/jobs": () =>
        json({ id: 42, run_id: 7, repository: "acme/app", labels: ["gpu", "linux"] }, 201),
    });
    renderWithClient(<SimulatorControl />);
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: /Queue a job/ }));
    await user.type(screen.getByLabelText("Labels (comma separated)"), "gpu, linux");
    const duration = screen.getByLabelText("Duration (seconds)");
    await user.clear(duration);
    await user.type(duration, "3");
    await user.selectOptions(screen.getByLabelText("Conclusion"), "failure");
    await user.click(screen.getByRole("button", { name: "Queue job" }));
    await waitFor(() => expect(screen.getByText("Queued job #42")).toBeInTheDocument());
    const [call] = callsTo(fetchMock, "/api/simulator/jobs");
    expect(call?.url.pathname).toBe("/api/simulator/jobs");
    expect(call?.body).toEqual({
      labels: ["gpu", "linux"],
      duration_seconds: 3,
      conclusion: "failure",
    });
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
  });

  it("leaves labels out when empty and shows the API's error", async () => {
    const fetchMock = mockApi({
      "/api/simulator/jobs": () => json({ detail: "simulator is stopped" }, 409),
    });
    renderWithClient(<SimulatorControl />);
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: /Queue a job/ }));
    await user.click(screen.getByRole("button", { name: "Queue job" }));
    expect(await screen.findByText(/simulator is stopped/)).toBeInTheDocument();
    expect(callsTo(fetchMock, "/api/simulator/jobs")[0]?.body).toEqual({
      duration_seconds: 10,
      conclusion: "success",
    });
  });

  it("refuses a negative duration", async () => {
    mockApi({});
    renderWithClient(<SimulatorControl />);
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: /Queue a job/ }));
    const duration = screen.getByLabelText("Duration (seconds)");
    await user.clear(duration);
    await user.type(duration, "-5");
    expect(screen.getByRole("button", { name: "Queue job" })).toBeDisabled();
  });
});
