/** Typed API payloads for tests. Built from the generated types, so they break with the API. */
import type {
  ControlState,
  HistoryResponse,
  Job,
  JobDetail,
  Pool,
  RepositoryHealth,
  StartBackoff,
  StatusResponse,
  Vm,
  VmDetail,
} from "@/lib/api/types";

export const NOW = 1_764_000_000; // epoch seconds

export function makeVm(overrides: Partial<Vm> = {}): Vm {
  return {
    vm_id: 1,
    ip: "172.16.0.2",
    status: "busy",
    pid: 4242,
    start_time: NOW - 120,
    uptime_seconds: 118,
    name: "bsm-default-1",
    pool: "default",
    labels: ["self-hosted", "linux"],
    vcpus: 2,
    memory_mib: 2048,
    scope: "acme/app",
    job_id: 101,
    state_since: NOW - 60,
    deadline: null,
    ready_at: NOW - 115,
    ended_at: null,
    death_reason: null,
    kept_until: null,
    ...overrides,
  };
}

export function makeVmDetail(overrides: Partial<VmDetail> = {}): VmDetail {
  return {
    ...makeVm(),
    console_tail: "[    0.000000] Linux version 6.1\nrunner: Listening for Jobs\n",
    events: [
      {
        id: 1,
        at: NOW - 120,
        kind: "vm.requested",
        vm_id: 1,
        job_id: null,
        message: "VM requested",
        actor: "system",
      },
      {
        id: 2,
        at: NOW - 115,
        kind: "vm.ready",
        vm_id: 1,
        job_id: null,
        message: "runner online",
        actor: "system",
      },
    ],
    ...overrides,
  };
}

export function makeJob(overrides: Partial<Job> = {}): Job {
  return {
    id: 101,
    run_id: 9001,
    run_attempt: 1,
    repository: "acme/app",
    workflow_name: "CI",
    name: "build",
    labels: ["self-hosted", "linux"],
    status: "in_progress",
    conclusion: null,
    runner_name: "bsm-default-1",
    vm_id: 1,
    pool: "default",
    unmatched_reason: null,
    html_url: null,
    stages: {
      queued: NOW - 125,
      vm_requested: NOW - 124,
      vm_ready: NOW - 115,
      started: NOW - 110,
      completed: null,
    },
    waiting_reason: null,
    ...overrides,
  };
}

export function makeJobDetail(overrides: Partial<JobDetail> = {}): JobDetail {
  return {
    ...makeJob({
      status: "completed",
      conclusion: "success",
      stages: {
        queued: NOW - 125,
        vm_requested: NOW - 124,
        vm_ready: NOW - 115,
        started: NOW - 110,
        completed: NOW - 50,
      },
    }),
    events: [
      {
        id: 7,
        at: NOW - 125,
        kind: "job.queued",
        vm_id: null,
        job_id: 101,
        message: "queued",
        actor: "system",
      },
      {
        id: 8,
        at: NOW - 50,
        kind: "job.completed",
        vm_id: 1,
        job_id: 101,
        message: "success",
        actor: "system",
      },
    ],
    ...overrides,
  };
}

export function makePool(overrides: Partial<Pool> = {}): Pool {
  return {
    name: "default",
    labels: ["self-hosted", "linux"],
    vcpus: 2,
    memory_mib: 2048,
    min_idle: 0,
    max_vms: 5,
    idle_target: 0,
    idle_reason: "fixed: min_idle 0",
    idle_vm_minutes_last_hour: 0,
    queued_jobs: 0,
    vms_by_status: { busy: 1 },
    paused: false,
    start_backoff: null,
    ...overrides,
  };
}

export function makeStartBackoff(overrides: Partial<StartBackoff> = {}): StartBackoff {
  return {
    failures: 3,
    reason:
      "VM starts failing in pool default: kernel /x not found; fix: build it with `blacksmith-mini image build` or set [vm.firecracker] kernel_path",
    next_try_at: NOW + 40,
    since: NOW - 120,
    ...overrides,
  };
}

export function makeRepository(overrides: Partial<RepositoryHealth> = {}): RepositoryHealth {
  return {
    name: "acme/app",
    healthy: true,
    error: null,
    moved_to: null,
    last_polled_at: NOW - 5,
    ...overrides,
  };
}

export function makeStatus(overrides: Partial<StatusResponse> = {}): StatusResponse {
  const vm = makeVm();
  return {
    timestamp: new Date(NOW * 1000).toISOString(),
    active_vms_count: 1,
    max_vms: 5,
    queued_jobs_count: 0,
    vms: [vm],
    queued_jobs: [],
    metrics: {
      spawn_rate_per_min: 1.2,
      death_rate_per_min: 0.4,
      pool_saturation_percent: 20,
      success_rate_percent: 94,
    },
    running_jobs: [makeJob()],
    unmatched_jobs: [],
    pools: [makePool()],
    github: {
      reachable: true,
      last_ok_at: NOW - 5,
      last_error: null,
      rate_limit_remaining: 4800,
      rate_limit_limit: 5000,
      rate_limit_reset_at: NOW + 1800,
      blocked_until: null,
      requests_total: 120,
      not_modified_total: 90,
      rate_limit_kind: null,
      repositories: [makeRepository()],
    },
    loop: {
      last_tick_at: NOW - 1,
      last_tick_duration_ms: 12,
      ticks: 345,
      last_error: null,
      stuck: false,
    },
    driver: "fake",
    simulate: true,
    completed_jobs_total: 17,
    snapshot_version: 1,
    draining: false,
    ...overrides,
  };
}

export function makeEmptyStatus(overrides: Partial<StatusResponse> = {}): StatusResponse {
  return makeStatus({
    active_vms_count: 0,
    vms: [],
    running_jobs: [],
    metrics: {
      spawn_rate_per_min: null,
      death_rate_per_min: null,
      pool_saturation_percent: 0,
      success_rate_percent: null,
    },
    completed_jobs_total: 0,
    ...overrides,
  });
}

export function makeHistory(overrides: Partial<HistoryResponse> = {}): HistoryResponse {
  return {
    window: "1h",
    step_seconds: 60,
    points: Array.from({ length: 10 }, (_, i) => ({
      at: NOW - (10 - i) * 60,
      active_vms: i % 4,
      queued_jobs: (i * 3) % 5,
      spawns: i % 3,
      deaths: (i + 1) % 3,
      queue_to_start_p50: 2 + i / 10,
      queue_to_start_p95: 5 + i / 5,
    })),
    ...overrides,
  };
}

export function makeControl(overrides: Partial<ControlState> = {}): ControlState {
  return {
    draining: false,
    draining_since: null,
    draining_by: null,
    draining_reason: null,
    paused_pools: [],
    pools: [{ name: "default", min_idle: 0, max_vms: 5, paused: false }],
    ...overrides,
  };
}
