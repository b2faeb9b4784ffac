"""Asynchronous try-ons: submit, list, poll, stream, fetch results, cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from vton.api.job_options import JobOutput, OutputFormat, ResponseFormat
from vton.api.schemas.common import ApiModel, Timings
from vton.api.schemas.fitting import BatchTryOnRequest, SingleTryOnRequest
from vton.api.webhooks import WebhookState
from vton.scheduler import JobState

MAX_DEADLINE_S = 24 * 3600


class JobOptionsIn(ApiModel):
    """What a job asks beyond its try-on: its deadline, how its images are returned, its
    webhook."""

    deadline_seconds: float | None = Field(
        None,
        gt=0,
        le=MAX_DEADLINE_S,
        strict=True,
        description="Seconds from submission to the job's deadline, at most VTON_JOB_TIMEOUT_S "
        "(the default; 422 above it). Items unfinished then end with JobTimeout.",
    )
    response_format: ResponseFormat = Field(
        "base64",
        description="base64: GET /api/jobs/{id} carries each image inline as well as its URL "
        "(the default, as before URLs existed); url: the URL only. Events and webhooks always "
        "carry URLs only.",
    )
    output_format: OutputFormat = Field("png", description="The result images' format.")
    output_quality: int = Field(
        90, ge=1, le=100, strict=True, description="JPEG and WebP quality (PNG is lossless)."
    )
    webhook_url: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="POSTed the finished job (JSON, result URLs, no image bodies) with headers "
        "X-Vton-Webhook-Id (the job id), X-Vton-Timestamp (Unix seconds) and X-Vton-Signature: "
        "sha256=hex(HMAC-SHA256(VTON_WEBHOOK_SECRET, timestamp + '.' + body)); retried with "
        "backoff until a 2xx. Its host must be in VTON_WEBHOOK_ALLOWED_HOSTS (422 otherwise).",
    )

    def output(self) -> JobOutput:
        return JobOutput(self.response_format, self.output_format, self.output_quality)


class SingleJobRequest(SingleTryOnRequest, JobOptionsIn):
    type: Literal["single"]


class BatchJobRequest(BatchTryOnRequest, JobOptionsIn):
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
    image_url: str | None = Field(
        None, description="GET it for the result in the job's outputFormat, once succeeded."
    )
    image: str | None = Field(
        None,
        description="The result, base64 in the job's outputFormat, once succeeded; only in GET "
        "/api/jobs/{id} of a job with responseFormat base64.",
    )
    error: str | None = None
    result_cached: bool = False
    timings: Timings | None = None
    batch_size: int | None = Field(
        None, description="Samples in the engine batch that made the image; absent when cached."
    )


class WebhookStatus(ApiModel):
    url: str
    state: WebhookState = Field(
        description="pending (the job runs), retrying, succeeded or failed (attempts spent, "
        "or the address was refused)."
    )
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: float | None = Field(None, description="Unix seconds, while retrying.")
    delivered_at: float | None = Field(None, description="Unix seconds.")


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
    deadline_at: float | None = Field(None, description="Unix seconds.")
    output_format: OutputFormat = "png"
    webhook: WebhookStatus | None = None
    results: list[JobItem]


class JobList(ApiModel):
    jobs: list[JobStatus] = Field(
        description="The caller's jobs still readable by id, newest first, without images."
    )
