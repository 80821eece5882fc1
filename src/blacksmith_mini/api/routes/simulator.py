"""``POST /api/simulator/jobs``: queue one simulated job (only in simulate mode)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from blacksmith_mini.api import schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.simulator import state

router = APIRouter(tags=["simulator"])


@router.post(
    "/api/simulator/jobs",
    response_model=schemas.SimulatedJobResponse,
    status_code=201,
    responses={**schemas.CHANGE_ERRORS, 404: {"model": schemas.ErrorResponse}},
)
async def queue_job(
    runtime: RuntimeDep, request: schemas.SimulatedJobRequest
) -> schemas.SimulatedJobResponse:
    """Queue a job at the simulated GitHub, as if a workflow had been triggered."""
    simulation = runtime.simulation
    if simulation is None:
        raise HTTPException(
            status_code=404, detail="the simulator is off: start with --simulate to use it"
        )
    labels = request.labels or list(runtime.settings.pools[0].labels)
    repository = request.repository or simulation.state.repositories[0]
    try:
        job = simulation.state.queue_job(
            repository=repository,
            labels=labels,
            duration=request.duration_seconds,
            conclusion=request.conclusion,
        )
    except state.Missing as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    return schemas.SimulatedJobResponse(
        id=job.id, run_id=job.run_id, repository=job.repository, labels=job.labels
    )
