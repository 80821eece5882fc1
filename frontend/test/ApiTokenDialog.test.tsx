import { act, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { ApiTokenDialog } from "@/components/ApiTokenDialog";
import { getToken, isAuthRequired, markAuthRequired } from "@/lib/api/token";
import { renderWithClient } from "./utils";

describe("ApiTokenDialog", () => {
  it("stays hidden until a call answers 401, then stores the token for this tab only", async () => {
    renderWithClient(<ApiTokenDialog />);
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    act(() => markAuthRequired());
    expect(screen.getByRole("dialog")).toHaveTextContent("API token required");
    await userEvent.type(screen.getByLabelText("Token"), "  abc123 ");
    await userEvent.click(screen.getByRole("button", { name: "Save token" }));
    expect(getToken()).toBe("abc123");
    expect(window.sessionStorage.getItem("blacksmith-mini.api-token")).toBe("abc123");
    expect(window.localStorage.length).toBe(0);
    expect(isAuthRequired()).toBe(false);
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
  });
});
