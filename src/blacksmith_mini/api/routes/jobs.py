"""``/api/jobs``: recent jobs with per-stage timestamps, and one job with its events."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Query

from blacksmith_mini.api import convert, schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.domain import planner

router = APIRouter(tags=["jobs"])


@router.get("/api/jobs", response_model=schemas.JobListResponse, responses=schemas.READ_ERRORS)
async def list_jobs(
    runtime: RuntimeDep, limit: int = Query(default=100, ge=1, le=1000)
) -> schemas.JobListResponse:
    """Open jobs first (oldest first), then completed ones (newest first)."""
    view = runtime.loop.view
    jobs = [
        convert.job_out(job, policy=view.policy, waiting=view.waiting.get(job.id), view=view)
        for job in view.open_jobs
    ]
    open_ids = {job.id for job in jobs}
    completed = view.recent_jobs
    if len(completed) < limit:
        completed = tuple(await runtime.store.recent_jobs(limit=limit))
    jobs += [
        convert.job_out(job, policy=view.policy)
        for job in completed
        if job.id not in open_ids and not job.is_open
    ]
    return schemas.JobListResponse(jobs=jobs[:limit])


@router.get(
    "/api/jobs/{job_id:int}",
    response_model=schemas.JobDetail,
    responses={**schemas.READ_ERRORS, 404: {"model": schemas.ErrorResponse}},
)
async def get_job(runtime: RuntimeDep, job_id: int = Path(ge=1, le=2**63 - 1)) -> schemas.JobDetail:
    """One job: every stage's timestamp, the VM that ran it, and why it waits if it does."""
    view = runtime.loop.view
    job = next((j for j in view.open_jobs if j.id == job_id), None)
    if job is None:
        job = await runtime.store.job(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job with id {job_id}")
    waiting = view.waiting.get(job_id) or planner.waiting_reason(
        job, policy=view.policy, vms=view.active_vms, now=view.at
    )
    out = convert.job_out(job, policy=view.policy, waiting=waiting, view=view)
    events = await runtime.store.events(job_id=job_id, limit=100)
    return schemas.JobDetail(
        **out.model_dump(), events=[convert.event_out(event) for event in events]
    )
