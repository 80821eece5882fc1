import { act, screen } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import { ApiConnectionError, ApiConnectionErrorNotice } from "@/components/ApiConnectionError";
import { makeStatus } from "./fixtures";
import { FakeEventSource, mockApi, networkDown, renderWithClient, renderWithStatus } from "./utils";

beforeEach(() => FakeEventSource.reset());

describe("ApiConnectionError", () => {
  it("uses the seed's heading and says how to start the backend", () => {
    renderWithClient(
      <ApiConnectionErrorNotice lastUpdatedAt={null} error={new TypeError("Failed to fetch")} />,
    );
    expect(screen.getByRole("heading", { name: "API Connection Error" })).toBeInTheDocument();
    expect(screen.getByText("make run")).toBeInTheDocument();
    expect(screen.getByText("uv run blacksmith-mini up --simulate")).toBeInTheDocument();
    expect(screen.getByTestId("last-fresh")).toHaveTextContent("No data received yet.");
    expect(screen.getByText("Failed to fetch")).toBeInTheDocument();
  });

  it("says when data was last fresh", () => {
    renderWithClient(
      <ApiConnectionErrorNotice lastUpdatedAt={Date.now() - 125_000} error={null} />,
    );
    expect(screen.getByTestId("last-fresh")).toHaveTextContent(
      /Last fresh data: .*\(2m 0[45]s ago\)/,
    );
  });

  it("shows only while the status stream is offline, with the stream's last fresh time", async () => {
    mockApi({ "/api/status": () => networkDown() });
    renderWithStatus(<ApiConnectionError />, makeStatus());
    act(() => FakeEventSource.latest().open());
    expect(screen.queryByRole("heading", { name: "API Connection Error" })).not.toBeInTheDocument();
    // The stream drops and the fallback poll cannot reach the API either.
    act(() => FakeEventSource.latest().fail());
    expect(
      await screen.findByRole("heading", { name: "API Connection Error" }),
    ).toBeInTheDocument();
    expect(screen.getByTestId("last-fresh")).toHaveTextContent("Last fresh data");
    expect(screen.getByText(/Failed to fetch/)).toBeInTheDocument();
  });
});
