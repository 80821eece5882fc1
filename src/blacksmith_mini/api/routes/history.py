"""``GET /api/history``: the stored metric samples, bucketed for 1 h, 24 h or 7 d charts.

Each bucket averages active VMs and queue depth, sums spawns and deaths, and takes the median
of the samples' p50 and the maximum of their p95 (an upper bound: percentiles do not add).
"""

from __future__ import annotations

import statistics
import time
from typing import Literal

from fastapi import APIRouter

from blacksmith_mini.api import schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.store import repository

router = APIRouter(tags=["history"])
WINDOWS = {"1h": (3600, 60), "24h": (86400, 900), "7d": (7 * 86400, 10800)}


@router.get("/api/history", response_model=schemas.HistoryResponse, responses=schemas.READ_ERRORS)
async def get_history(
    runtime: RuntimeDep, window: Literal["1h", "24h", "7d"] = "1h"
) -> schemas.HistoryResponse:
    span, step = WINDOWS[window]
    now = time.time()
    samples = await runtime.store.samples(since=now - span)
    buckets: dict[int, list[repository.Sample]] = {}
    for sample in samples:
        buckets.setdefault(int(sample.at // step), []).append(sample)
    points = [_point(index * step, group) for index, group in sorted(buckets.items())]
    return schemas.HistoryResponse(window=window, step_seconds=step, points=points)


def _point(at: float, group: list[repository.Sample]) -> schemas.HistoryPoint:
    p50s = [s.queue_to_start_p50 for s in group if s.queue_to_start_p50 is not None]
    p95s = [s.queue_to_start_p95 for s in group if s.queue_to_start_p95 is not None]
    return schemas.HistoryPoint(
        at=at,
        active_vms=round(statistics.fmean(s.active_vms for s in group), 2),
        queued_jobs=round(statistics.fmean(s.queued_jobs for s in group), 2),
        spawns=sum(s.spawns for s in group),
        deaths=sum(s.deaths for s in group),
        queue_to_start_p50=round(statistics.median(p50s), 3) if p50s else None,
        queue_to_start_p95=max(p95s) if p95s else None,
    )
