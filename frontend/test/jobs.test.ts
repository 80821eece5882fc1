import { describe, expect, it } from "vitest";
import { jobSegments, jobUrl, mergeJobs, runUrl, stageTimings } from "@/lib/jobs";
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

describe("mergeJobs", () => {
  it("prefers the live snapshot and lists unfinished jobs first", () => {
    const old = makeJob({
      id: 1,
      status: "queued",
      stages: { ...makeJob().stages, queued: NOW - 10 },
    });
    const done = makeJob({ id: 2, status: "completed", conclusion: "success" });
    const live = { ...old, status: "in_progress" as const };
    const merged = mergeJobs([done, old], makeStatus({ running_jobs: [live] }));
    expect(merged.map((j) => [j.id, j.status])).toEqual([
      [1, "in_progress"],
      [2, "completed"],
    ]);
  });
});
