import { act, screen, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import { useStatusSelector } from "@/hooks/useStatusStream";
import { queryKeys } from "@/lib/api/queries";
import type { StatusResponse } from "@/lib/api/types";
import { applyStatusDelta, parseStatusDelta, type StatusDelta } from "@/lib/statusDelta";
import { MAX_RESYNCS, resumeUrl } from "@/lib/statusStreamSource";
import { makeJob, makePool, makeStatus, makeVm } from "./fixtures";
import { FakeEventSource, mockApi, pending, renderWithClient } from "./utils";

beforeEach(() => FakeEventSource.reset());

const base = () =>
  makeStatus({
    snapshot_version: 1,
    vms: [makeVm({ vm_id: 1 }), makeVm({ vm_id: 2, status: "idle", job_id: null })],
    running_jobs: [makeJob({ id: 101 })],
    pools: [makePool()],
  });

function delta(changes: Partial<StatusDelta> & { to?: number } = {}): StatusDelta {
  const from = changes.from ?? 1;
  const to = changes.to ?? from + 1;
  return {
    from,
    to,
    fields: { snapshot_version: to, ...changes.fields },
    collections: changes.collections ?? {},
  };
}

describe("applyStatusDelta", () => {
  it("upserts: merges the changed members into an entity, appends a new one", () => {
    const status = base();
    const added = makeVm({ vm_id: 3, status: "booting" });
    const next = applyStatusDelta(
      status,
      delta({
        collections: {
          vms: { key: "vm_id", upsert: [{ vm_id: 2, status: "busy", job_id: 7 }, added] },
        },
      }),
    );
    expect(next?.vms.map((vm) => [vm.vm_id, vm.status, vm.job_id])).toEqual([
      [1, "busy", 101],
      [2, "busy", 7],
      [3, "booting", 101],
    ]);
    expect(next?.vms[1]).toEqual({ ...status.vms[1], status: "busy", job_id: 7 });
    // What the delta did not touch keeps its identity.
    expect(next?.vms[0]).toBe(status.vms[0]);
    expect(next?.pools).toBe(status.pools);
    expect(next?.snapshot_version).toBe(2);
    expect(status.vms).toHaveLength(2); // the held status is left as it was
  });

  it("removals: drops the entities with the given keys", () => {
    const next = applyStatusDelta(
      base(),
      delta({
        collections: {
          vms: { key: "vm_id", remove: [1] },
          running_jobs: { key: "id", remove: [101] },
        },
      }),
    );
    expect(next?.vms.map((vm) => vm.vm_id)).toEqual([2]);
    expect(next?.running_jobs).toEqual([]);
  });

  it("field changes: top-level members replaced whole; order when given", () => {
    const status = base();
    const metrics = { ...status.metrics, spawn_rate_per_min: 4 };
    const next = applyStatusDelta(
      status,
      delta({
        fields: { timestamp: "2026-01-01T00:00:00Z", metrics, queued_jobs_count: 3 },
        collections: { vms: { key: "vm_id", order: [2, 1] } },
      }),
    );
    expect(next?.timestamp).toBe("2026-01-01T00:00:00Z");
    expect(next?.metrics).toEqual(metrics);
    expect(next?.queued_jobs_count).toBe(3);
    expect(next?.vms.map((vm) => vm.vm_id)).toEqual([2, 1]);
    expect(next?.github).toBe(status.github);
  });

  it("refuses a delta that does not follow the held version or does not fit", () => {
    expect(applyStatusDelta(base(), delta({ from: 5 }))).toBeNull();
    const unknownOrder = delta({ collections: { vms: { key: "vm_id", order: [2, 9] } } });
    expect(applyStatusDelta(base(), unknownOrder)).toBeNull();
    const notAList = delta({ collections: { metrics: { key: "id", remove: [1] } } });
    expect(applyStatusDelta(base(), notAList)).toBeNull();
  });

  it("parses only well-formed deltas", () => {
    expect(parseStatusDelta(JSON.stringify(delta()))).toEqual(delta());
    expect(parseStatusDelta("{not json")).toBeNull();
    expect(parseStatusDelta(JSON.stringify({ from: 1, to: 2 }))).toBeNull();
    const badKeys = { ...delta(), collections: { vms: { key: "vm_id", remove: [{}] } } };
    expect(parseStatusDelta(JSON.stringify(badKeys))).toBeNull();
  });

  it("resumes after the held version", () => {
    expect(resumeUrl("/api/events", null)).toBe("/api/events");
    expect(resumeUrl("/api/events", 7)).toBe("/api/events?last_event_id=7");
    expect(resumeUrl("/api/events?access_token=t", 7)).toBe(
      "/api/events?access_token=t&last_event_id=7",
    );
  });
});

/** The VMs and the version the page shows. */
function Vms() {
  const vms = useStatusSelector((s) => s.vms.map((vm) => `${vm.vm_id}:${vm.status}`).join(","));
  const version = useStatusSelector((s) => s.snapshot_version);
  return <p data-testid="vms">{vms === undefined ? "no data" : `v${version} ${vms}`}</p>;
}

const FAST = { initialBackoffMs: 5, maxBackoffMs: 10, pollIntervalMs: 60_000 };

function renderStream() {
  mockApi({ "/api/status": () => pending() });
  const rendered = renderWithClient(<Vms />, undefined, { statusStream: FAST });
  const es = FakeEventSource.latest();
  act(() => {
    es.open();
    es.push("snapshot", base(), "1");
  });
  return { ...rendered, es };
}

const shown = () => screen.getByTestId("vms");

describe("StatusStreamProvider with snapshot and delta events", () => {
  it("applies the deltas to the snapshot, into the query cache", async () => {
    const { client, es } = renderStream();
    await waitFor(() => expect(shown()).toHaveTextContent("v1 1:busy,2:idle"));
    act(() =>
      es.push(
        "delta",
        delta({ collections: { vms: { key: "vm_id", upsert: [{ vm_id: 2, status: "busy" }] } } }),
        "2",
      ),
    );
    await waitFor(() => expect(shown()).toHaveTextContent("v2 1:busy,2:busy"));
    act(() =>
      es.push(
        "delta",
        delta({
          from: 2,
          collections: { vms: { key: "vm_id", remove: [1], upsert: [makeVm({ vm_id: 3 })] } },
        }),
        "3",
      ),
    );
    await waitFor(() => expect(shown()).toHaveTextContent("v3 2:busy,3:busy"));
    const cached = client.getQueryData<StatusResponse>(queryKeys.status);
    expect(cached?.vms.map((vm) => vm.vm_id)).toEqual([2, 3]);
    expect(FakeEventSource.instances).toHaveLength(1);
  });

  it("an out-of-order delta resyncs: a new stream without last_event_id, then its snapshot", async () => {
    const { es } = renderStream();
    await waitFor(() => expect(shown()).toHaveTextContent("v1"));
    act(() => es.push("delta", delta({ from: 4 }), "5"));
    expect(es.closed).toBe(true);
    expect(FakeEventSource.instances).toHaveLength(2);
    const fresh = FakeEventSource.latest();
    expect(fresh.url).toMatch(/\/api\/events$/);
    expect(shown()).toHaveTextContent("v1 1:busy,2:idle"); // the last good state stays
    act(() => fresh.push("snapshot", makeStatus({ snapshot_version: 6, vms: [] }), "6"));
    await waitFor(() => expect(shown()).toHaveTextContent("v6"));
    act(() => fresh.push("delta", delta({ from: 6 }), "7"));
    await waitFor(() => expect(shown()).toHaveTextContent("v7"));
  });

  it("reconnects after an error resuming from the held version", async () => {
    const { es } = renderStream();
    act(() => es.push("delta", delta(), "2"));
    await waitFor(() => expect(shown()).toHaveTextContent("v2"));
    act(() => es.fail());
    await waitFor(() => expect(FakeEventSource.instances).toHaveLength(2));
    const resumed = FakeEventSource.latest();
    expect(resumed.url).toMatch(/\/api\/events\?last_event_id=2$/);
    act(() => {
      resumed.open();
      resumed.push("delta", delta({ from: 2 }), "3");
    });
    await waitFor(() => expect(shown()).toHaveTextContent("v3 1:busy,2:idle"));
  });

  it("gives up resyncing after a few tries in a row and lets the stream reconnect", async () => {
    const { es } = renderStream();
    act(() => es.push("delta", delta({ from: 9 }), "10"));
    for (let attempt = 1; attempt < MAX_RESYNCS; attempt += 1) {
      const again = FakeEventSource.latest();
      act(() => again.push("delta", delta({ from: 9 }), "10"));
    }
    const last = FakeEventSource.latest();
    act(() => last.push("delta", delta({ from: 9 }), "10")); // one more: an error
    expect(last.closed).toBe(true);
    await waitFor(() => expect(FakeEventSource.instances).toHaveLength(MAX_RESYNCS + 2));
    expect(FakeEventSource.latest().url).toMatch(/\/api\/events$/);
  });

  it("still takes whole status events", async () => {
    const { es } = renderStream();
    act(() => es.push("status", makeStatus({ snapshot_version: 9, vms: [] }), "9"));
    await waitFor(() => expect(shown()).toHaveTextContent("v9"));
  });
});
