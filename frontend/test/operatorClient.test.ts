import { describe, expect, it } from "vitest";
import { ApiError, api, operatorErrorMessage } from "@/lib/api/client";
import { withControlState } from "@/lib/api/queries";
import { cleanActor, getActor, getAuthNeed, markAuthRequired, setActor } from "@/lib/api/token";
import { makeControl, makeStatus } from "./fixtures";
import { callsTo, mockApi } from "./utils";

describe("operator API client", () => {
  it("sends the operator's name with changes only", async () => {
    setActor("  ana ");
    expect(getActor()).toBe("ana");
    const fetchMock = mockApi({
      "/api/control/drain": makeControl(),
      "/api/control": makeControl(),
    });
    await api.drain({ reason: "why" });
    await api.control();
    expect(callsTo(fetchMock, "/api/control/drain")[0]?.headers.get("X-Blacksmith-Actor")).toBe(
      "ana",
    );
    expect(callsTo(fetchMock, "/api/control", "GET")[0]?.headers.has("X-Blacksmith-Actor")).toBe(
      false,
    );
  });

  it("keeps only what a header can carry", () => {
    expect(cleanActor("José\u0007 李")).toBe("José");
    expect(cleanActor("x".repeat(80))).toHaveLength(64);
  });

  it("marks a refused change as needing the admin token, a refused read outranks it", async () => {
    mockApi({ "/api/control/resume": new Response("{}", { status: 401 }) });
    await expect(api.resume({ reason: "" })).rejects.toBeInstanceOf(ApiError);
    expect(getAuthNeed()).toBe("admin");
    markAuthRequired("read");
    markAuthRequired("admin");
    expect(getAuthNeed()).toBe("read");
  });

  it("words each failure", () => {
    expect(operatorErrorMessage(new ApiError(403, "changes are disabled", "/x"))).toBe(
      "operator actions are disabled on this server: set server.admin_token",
    );
    expect(operatorErrorMessage(new ApiError(409, "VM 1 is busy", "/x"))).toBe("VM 1 is busy");
    expect(operatorErrorMessage(new ApiError(500, null, "/x"))).toBe("The API answered HTTP 500.");
    expect(operatorErrorMessage(new TypeError("Failed to fetch"))).toBe(
      "Could not reach the API: Failed to fetch",
    );
  });

  it("applies an action's answer to the status snapshot", () => {
    const status = makeStatus();
    const next = withControlState(
      status,
      makeControl({
        draining: true,
        paused_pools: ["default"],
        pools: [{ name: "default", min_idle: 1, max_vms: 3, paused: true }],
      }),
    );
    expect(next.draining).toBe(true);
    expect(next.pools[0]).toMatchObject({ paused: true, min_idle: 1, max_vms: 3 });
    expect(status.draining).toBe(false);
  });
});
