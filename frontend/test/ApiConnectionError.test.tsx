import { screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ApiConnectionError } from "@/components/ApiConnectionError";
import { renderWithClient } from "./utils";

describe("ApiConnectionError", () => {
  it("uses the seed's heading and says how to start the backend", () => {
    renderWithClient(
      <ApiConnectionError lastUpdatedAt={null} error={new TypeError("Failed to fetch")} />,
    );
    expect(screen.getByRole("heading", { name: "API Connection Error" })).toBeInTheDocument();
    expect(screen.getByText("make run")).toBeInTheDocument();
    expect(screen.getByText("uv run blacksmith-mini up --simulate")).toBeInTheDocument();
    expect(screen.getByTestId("last-fresh")).toHaveTextContent("No data received yet.");
    expect(screen.getByText("Failed to fetch")).toBeInTheDocument();
  });

  it("says when data was last fresh", () => {
    renderWithClient(<ApiConnectionError lastUpdatedAt={Date.now() - 125_000} error={null} />);
    expect(screen.getByTestId("last-fresh")).toHaveTextContent(
      /Last fresh data: .*\(2m 0[45]s ago\)/,
    );
  });
});
