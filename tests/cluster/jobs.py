"""Payloads and results the cluster tests (and their worker processes) share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vton.cluster.messages import (
    GarmentRef,
    ItemResult,
    PersonRef,
    RunOptions,
    Timings,
    TryOnJob,
    TryOnResult,
)

POISON_SEED = 666
"""A job with this seed kills the worker process that runs it (tests of the stall limit)."""


def sample_job(garments: int = 1, steps: int = 4, seed: int = 42, **fields: object) -> TryOnJob:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "kind": "single" if garments == 1 else "batch",
        "user_id": "user-1",
        "person": PersonRef(version="18f2a3b4c5d6e7f8a1b2c3d4"),
        "garments": [
            GarmentRef(clothing_id=f"shirt-{i}", version=f"18f2a3b4c5d6e7f9{i:08x}")
            for i in range(garments)
        ],
        "options": RunOptions(steps=steps, seed=seed),
        "requested_at": now,
        "deadline": now + timedelta(minutes=5),
    }
    values.update(fields)
    return TryOnJob.model_validate(values)


def result_for(job_id: str, job: TryOnJob, worker: str, batch_size: int = 1) -> TryOnResult:
    """What a worker that ran `job` reports: one stored PNG per garment."""
    return TryOnResult(
        items=[
            ItemResult(
                index=i,
                clothing_id=garment.clothing_id,
                state="succeeded",
                result_key=f"results/{job.user_id}/{job_id}-{i}.png",
                timings=Timings(diffusion=12.5, total=20.0),
                batch_size=batch_size,
            )
            for i, garment in enumerate(job.garments)
        ],
        worker=worker,
    )
