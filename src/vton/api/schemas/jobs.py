"""Asynchronous try-ons: submit, poll, stream, cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from vton.api.schemas.common import ApiModel, Timings
from vton.api.schemas.fitting import BatchTryOnRequest, SingleTryOnRequest
from vton.scheduler import JobState


class SingleJobRequest(SingleTryOnRequest):
    type: Literal["single"]


class BatchJobRequest(BatchTryOnRequest):
    type: Literal["batch"]


JobRequest = Annotated[SingleJobRequest | BatchJobRequest, Field(discriminator="type")]


class JobAccepted(ApiModel):
    job_id: str
    state: JobState
    status_url: str
    events_url: str


class JobItem(ApiModel):
    index: int
    clothing_id: str | None
    state: JobState
    success: bool
    image: str | None = Field(None, description="The result, base64 PNG, once succeeded.")
    error: str | None = None
    result_cached: bool = False
    timings: Timings | None = None
    batch_size: int | None = Field(
        None, description="Samples in the engine batch that made the image; absent when cached."
    )


class JobStatus(ApiModel):
    job_id: str
    type: Literal["single", "batch", "inline"]
    state: JobState
    step: int = Field(description="Denoising steps done, summed over the items...")
    total_steps: int = Field(description="...out of steps x items.")
    error: str | None = None
    created_at: float = Field(description="Unix seconds.")
    started_at: float | None = None
    finished_at: float | None = None
    results: list[JobItem]
