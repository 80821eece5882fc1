/**
 * The event stream's deltas (`GET /api/events`, `event: delta`) applied to a status snapshot.
 *
 *   {"from": 41, "to": 42,
 *    "fields": {"timestamp": "...", "snapshot_version": 42},          // replaced whole
 *    "collections": {"vms": {"key": "vm_id", "upsert": [...], "remove": [3], "order": [...]}}}
 *
 * A collection change drops the `remove`d keys, merges each `upsert` member by member into the
 * entity with its key (or appends it when the key is new), then orders the entities by `order`
 * when it is given. What the delta does not touch keeps its identity (same objects, same arrays),
 * so selectors of unchanged parts do not re-render. The stream is not described by the OpenAPI
 * document, so its payload is checked here instead of cast.
 */
import { isStatusResponse } from "@/hooks/useVMData";
import type { StatusResponse } from "@/lib/api/types";

type Entity = Record<string, unknown>;
type Key = string | number;

export interface CollectionChange {
  key: string;
  upsert?: Entity[];
  remove?: Key[];
  order?: Key[];
}

export interface StatusDelta {
  from: number;
  to: number;
  fields: Record<string, unknown>;
  collections: Record<string, CollectionChange>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isKeyList(value: unknown): value is Key[] {
  return Array.isArray(value) && value.every((k) => typeof k === "string" || typeof k === "number");
}

function isCollectionChange(value: unknown): value is CollectionChange {
  if (!isRecord(value) || typeof value.key !== "string") return false;
  const { upsert, remove, order } = value;
  return (
    (upsert === undefined || (Array.isArray(upsert) && upsert.every(isRecord))) &&
    (remove === undefined || isKeyList(remove)) &&
    (order === undefined || isKeyList(order))
  );
}

export function isStatusDelta(value: unknown): value is StatusDelta {
  return (
    isRecord(value) &&
    typeof value.from === "number" &&
    typeof value.to === "number" &&
    isRecord(value.fields) &&
    isRecord(value.collections) &&
    Object.values(value.collections).every(isCollectionChange)
  );
}

/** The delta in an event's data, or null when it is not one. */
export function parseStatusDelta(raw: unknown): StatusDelta | null {
  if (typeof raw !== "string") return null;
  try {
    const value: unknown = JSON.parse(raw);
    return isStatusDelta(value) ? value : null;
  } catch {
    return null;
  }
}

function applyCollection(items: unknown, change: CollectionChange): Entity[] | null {
  if (!Array.isArray(items) || !items.every(isRecord)) return null;
  const { key } = change;
  const gone = new Set<unknown>(change.remove ?? []);
  const result = gone.size ? items.filter((item) => !gone.has(item[key])) : [...items];
  const position = new Map<unknown, number>(result.map((item, index) => [item[key], index]));
  for (const patch of change.upsert ?? []) {
    const index = position.get(patch[key]);
    if (index === undefined) {
      position.set(patch[key], result.length);
      result.push(patch);
    } else {
      result[index] = { ...result[index], ...patch };
    }
  }
  if (!change.order) return result;
  const byKey = new Map<unknown, Entity>(result.map((item) => [item[key], item]));
  const ordered: Entity[] = [];
  for (const identity of change.order) {
    const item = byKey.get(identity);
    if (!item) return null;
    ordered.push(item);
  }
  return ordered;
}

/**
 * The status `delta` leads to from `status`; null when it does not apply (it starts from another
 * version, or does not fit this status): resync from a fresh snapshot then.
 */
export function applyStatusDelta(
  status: StatusResponse,
  delta: StatusDelta,
): StatusResponse | null {
  if (status.snapshot_version !== delta.from) return null;
  const next: Record<string, unknown> = { ...status };
  for (const [name, change] of Object.entries(delta.collections)) {
    const items = applyCollection(next[name], change);
    if (!items) return null;
    next[name] = items;
  }
  Object.assign(next, delta.fields);
  if (!isStatusResponse(next) || next.snapshot_version !== delta.to) return null;
  return next;
}
