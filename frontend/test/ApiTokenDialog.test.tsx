import { act, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { ApiTokenDialog } from "@/components/ApiTokenDialog";
import { getActor, getToken, isAuthRequired, markAuthRequired } from "@/lib/api/token";
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

  it("asks for the admin token when a change was refused; it can be given up", async () => {
    renderWithClient(<ApiTokenDialog />);
    act(() => markAuthRequired("admin"));
    const dialog = screen.getByRole("dialog");
    expect(dialog).toHaveTextContent("Admin token required");
    expect(dialog).toHaveTextContent("server.admin_token");
    await userEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(isAuthRequired()).toBe(false);
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(getToken()).toBeNull();
  });

  it("keeps the admin token and the operator's name for this tab", async () => {
    renderWithClient(<ApiTokenDialog />);
    act(() => markAuthRequired("admin"));
    await userEvent.type(screen.getByLabelText("Token"), "admin-secret");
    await userEvent.type(screen.getByLabelText(/Your name/), "ana");
    await userEvent.click(screen.getByRole("button", { name: "Save token" }));
    expect(getToken()).toBe("admin-secret");
    expect(getActor()).toBe("ana");
    expect(window.sessionStorage.getItem("blacksmith-mini.actor")).toBe("ana");
    expect(window.localStorage.length).toBe(0);
  });

  it("cannot be dismissed while reading is refused", async () => {
    renderWithClient(<ApiTokenDialog />);
    act(() => markAuthRequired());
    expect(screen.queryByRole("button", { name: "Cancel" })).not.toBeInTheDocument();
    await userEvent.keyboard("{Escape}");
    expect(screen.getByRole("dialog")).toBeInTheDocument();
  });
});
