import { describe, expect, it } from "vitest";
import { jobListing, jobSegments, jobUrl, liveJobs, runUrl, stageTimings } from "@/lib/jobs";
import { makeJob, makeStatus, NOW } from "./fixtures";

describe("jobSegments", () => {
  it("splits a finished job into its four stages", () => {
    const job = makeJob({
      status: "completed",
      conclusion: "success",
      stages: { queued: 0, vm_requested: 1, vm_ready: 5, started: 6, completed: 20 },
    });
    expect(jobSegments(job, 100).map((s) => [s.key, s.start, s.end, s.open])).toEqual([
      ["waiting", 0, 1, false],
      ["booting", 1, 5, false],
      ["online", 5, 6, false],
      ["running", 6, 20, false],
    ]);
  });

  it("ends an unfinished stage at now", () => {
    const job = makeJob({
      status: "queued",
      stages: { queued: 10, vm_requested: 12, vm_ready: null, started: null, completed: null },
    });
    const segments = jobSegments(job, 30);
    expect(segments.at(-1)).toMatchObject({ key: "booting", start: 12, end: 30, open: true });
  });

  it("never overlaps segments when GitHub's started time is before the VM was ready", () => {
    const job = makeJob({
      stages: { queued: 100, vm_requested: 100.1, vm_ready: 100.3, started: 100, completed: null },
    });
    const segments = jobSegments(job, 110);
    for (let i = 1; i < segments.length; i++) {
      expect(segments[i]?.start).toBeGreaterThanOrEqual(segments[i - 1]?.end ?? 0);
    }
    expect(segments.at(-1)).toMatchObject({ key: "running", start: 100.3, end: 110 });
  });
});

describe("stageTimings", () => {
  it("marks stages a warm VM skipped", () => {
    const job = makeJob({
      status: "completed",
      stages: { queued: 50, vm_requested: 10, vm_ready: 20, started: 51, completed: 60 },
    });
    const timings = stageTimings(job, 100);
    expect(timings[0]?.prewarmed).toBe(true);
    expect(timings[1]?.prewarmed).toBe(true);
    expect(timings[2]?.duration).toBe(1);
    expect(timings[3]?.duration).toBe(9);
  });

  it("does not call a VM warm when GitHub's whole-second times tie", () => {
    const job = makeJob({
      status: "completed",
      stages: { queued: 100, vm_requested: 100.1, vm_ready: 100.3, started: 100, completed: 101 },
    });
    const timings = stageTimings(job, 200);
    expect(timings.map((t) => t.prewarmed)).toEqual([false, false, false, false]);
    expect(timings[2]?.duration).toBe(0);
  });
});

describe("GitHub links", () => {
  it("builds run and job URLs, preferring html_url", () => {
    const job = makeJob({ id: 5, run_id: 9, repository: "o/r", html_url: null });
    expect(runUrl(job)).toBe("https://github.com/o/r/actions/runs/9");
    expect(jobUrl(job)).toBe("https://github.com/o/r/actions/runs/9/job/5");
    const withHtml = { ...job, html_url: "https://ghe.example/o/r/actions/runs/9/job/77" };
    expect(jobUrl(withHtml)).toBe("https://ghe.example/o/r/actions/runs/9/job/77");
    expect(runUrl(withHtml)).toBe("https://ghe.example/o/r/actions/runs/9");
  });
});

describe("liveJobs and jobListing", () => {
  it("lists the stream's open jobs first, then the history's completed ones, newest first", () => {
    const queued = makeJob({
      id: 1,
      status: "queued",
      stages: { ...makeJob().stages, queued: NOW - 10 },
    });
    const running = makeJob({ id: 3, stages: { ...makeJob().stages, queued: NOW - 50 } });
    const unmatched = makeJob({ id: 4, status: "queued", unmatched_reason: "no pool" });
    const live = liveJobs(
      makeStatus({ queued_jobs: [queued], running_jobs: [running], unmatched_jobs: [unmatched] }),
    );
    expect(live.map((j) => j.id)).toEqual(
      [1, 3, 4].sort((a, b) => {
        const start = (id: number) => live.find((j) => j.id === id)?.stages.queued ?? 0;
        return start(b) - start(a) || b - a;
      }),
    );
    const old = makeJob({
      id: 5,
      status: "completed",
      conclusion: "success",
      stages: { ...makeJob().stages, queued: NOW - 900 },
    });
    const recent = makeJob({
      id: 2,
      status: "completed",
      conclusion: "failure",
      stages: { ...makeJob().stages, queued: NOW - 100 },
    });
    // Job 3 just finished: the history has it, the stream still shows it running.
    const finished = { ...running, status: "completed" as const, conclusion: "success" as const };
    const listing = jobListing(live, [old, finished, recent]);
    expect(listing.map((j) => [j.id, j.status])).toEqual([
      ...live.map((j) => [j.id, j.status]),
      [2, "completed"],
      [5, "completed"],
    ]);
  });

  it("lists an unmatched job once: it is among the queued jobs too", () => {
    const unmatched = makeJob({ id: 7, status: "queued", unmatched_reason: "no pool" });
    const status = makeStatus({ queued_jobs: [unmatched], unmatched_jobs: [unmatched] });
    expect(liveJobs(status).filter((j) => j.id === 7)).toHaveLength(1);
  });

  it("is empty without data", () => {
    expect(jobListing(undefined, undefined)).toEqual([]);
  });
});
