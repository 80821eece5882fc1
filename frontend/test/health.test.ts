import { describe, expect, it } from "vitest";
import type { GitHubHealth } from "@/lib/api/types";
import { formatCountdown } from "@/lib/format";
import {
  keptState,
  poolBackoff,
  rateLimitLabel,
  repositoryIssues,
  sshCommand,
  unhealthyRepositoryCount,
  waitsOnFailure,
} from "@/lib/health";
import {
  makeJob,
  makePool,
  makeRepository,
  makeStartBackoff,
  makeStatus,
  makeVm,
  NOW,
} from "./fixtures";

const github = (repositories: GitHubHealth["repositories"]): GitHubHealth => ({
  ...makeStatus().github,
  repositories,
});

describe("health helpers", () => {
  it("counts down in whole seconds, then minutes", () => {
    expect(formatCountdown(NOW + 40, NOW * 1000)).toBe("40s");
    expect(formatCountdown(NOW + 39.2, NOW * 1000)).toBe("40s");
    expect(formatCountdown(NOW + 125, NOW * 1000)).toBe("2m 05s");
    expect(formatCountdown(NOW - 3, NOW * 1000)).toBe("0s");
  });

  it("reads a pool's back-off, absent on older servers", () => {
    expect(poolBackoff(makePool())).toBeNull();
    expect(poolBackoff({})).toBeNull();
    const backoff = makeStartBackoff();
    expect(poolBackoff(makePool({ start_backoff: backoff }))).toBe(backoff);
  });

  it("names the rate limit that blocks", () => {
    expect(rateLimitLabel("secondary")).toBe("secondary rate limit");
    expect(rateLimitLabel("primary")).toBe("rate limit");
    expect(rateLimitLabel(null)).toBe("rate limit");
    expect(rateLimitLabel(undefined)).toBe("rate limit");
  });

  it("lists unhealthy, then renamed repositories; none when all are fine", () => {
    const gone = makeRepository({ name: "acme/gone", healthy: false, error: "404 Not Found" });
    const moved = makeRepository({ name: "acme/old", moved_to: "acme/new" });
    const fine = makeRepository();
    expect(repositoryIssues(github([fine, moved, gone]))).toEqual([gone, moved]);
    expect(unhealthyRepositoryCount(github([fine, moved, gone]))).toBe(1);
    expect(repositoryIssues(github([fine]))).toEqual([]);
    expect(repositoryIssues(github(undefined))).toEqual([]);
    expect(repositoryIssues(undefined)).toEqual([]);
  });

  it("says until when a VM is kept and how many minutes are left", () => {
    const vm = makeVm({ kept_until: NOW + 12 * 60 - 10 });
    expect(keptState(vm, NOW * 1000)).toEqual({ until: NOW + 710, minutesLeft: 12 });
    expect(keptState(vm, (NOW + 800) * 1000)?.minutesLeft).toBe(0);
    expect(keptState(makeVm(), NOW * 1000)).toBeNull();
    expect(keptState({ ...vm, status: "gone" }, NOW * 1000)).toBeNull();
    expect(sshCommand(7)).toBe("blacksmith-mini ssh 7");
  });

  it("tells a job waiting on a failure from one waiting for capacity", () => {
    const queued = makeJob({ status: "queued", vm_id: null });
    expect(waitsOnFailure(queued, makeStatus())).toBe(false);
    expect(waitsOnFailure(queued, undefined)).toBe(false);
    const backingOff = makeStatus({ pools: [makePool({ start_backoff: makeStartBackoff() })] });
    expect(waitsOnFailure(queued, backingOff)).toBe(true);
    expect(waitsOnFailure(makeJob(), backingOff)).toBe(false); // running, not waiting
    const unhealthy = makeStatus();
    unhealthy.github.repositories = [makeRepository({ healthy: false, error: "403 Forbidden" })];
    expect(waitsOnFailure(queued, unhealthy)).toBe(true);
  });
});
