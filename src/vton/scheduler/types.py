"""The named types that pass between the scheduler's stages and out to its callers.

    submit -> WorkItem (queued) -> Batch (schedule) -> ItemOutcome (execute) -> JobEvent (update)

A job's state and per-item results are read as a JobSnapshot; its events are streamed as JobEvent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Protocol

from PIL import Image

from vton.engine.types import DiffusionOptions, TryOnOutput, TryOnSample
from vton.errors import VtonError

if TYPE_CHECKING:
    from vton.scheduler.job import Job


class Pipeline(Protocol):
    """What a worker calls: `vton.engine.pipeline.TryOnPipeline`, or a fake with its signature.

    on_step(steps_done, total_steps) is called after each denoising step; raising from it stops
    the call.
    """

    def __call__(
        self,
        samples: list[TryOnSample],
        options: DiffusionOptions,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[TryOnOutput]: ...


Finisher = Callable[[Image.Image], Image.Image]
"""Maps an item's engine image to the image returned and cached (e.g. paste-back); called on the
worker's finisher thread, before the image's only PNG encode."""


@dataclass(frozen=True)
class DevicePipelines:
    """What one worker drives: the pipeline on its device and, optionally, a fallback.

    The fallback is the same model in a safer precision (e.g. float32 VAE); an item whose image is
    non-finite or all black is retried once on it. Without one such an item fails at once.
    """

    main: Pipeline
    fallback: Pipeline | None = None


class JobState(StrEnum):
    """The state of a job, or of one of its items."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True, eq=False)
class WorkItem:
    """One sample waiting for or in a batch: one garment on one person, with the job's options."""

    job: Job
    index: int
    """The item's position in its job (the request's order of garments)."""
    sample: TryOnSample
    options: DiffusionOptions
    cache_key: str | None
    """Where the result goes in the result cache; None: not cached (inline requests)."""
    enqueued_at: float
    """time.monotonic() when it entered the queue."""
    finisher: Finisher | None = None
    """Applied to the engine's image before it is encoded and cached; None: returned as it is."""

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def user_id(self) -> str:
        return self.job.user_id

    @property
    def seed(self) -> int:
        return self.sample.seed


@dataclass(frozen=True)
class Batch:
    """Items sharing one pipeline call, all with the same options (the schedule step's output)."""

    options: DiffusionOptions
    items: tuple[WorkItem, ...]


@dataclass(frozen=True)
class ItemOutcome:
    """One item after the execute step: exactly one of output and error is set."""

    item: WorkItem
    output: TryOnOutput | None = None
    error: VtonError | None = None


@dataclass(frozen=True)
class ItemResult:
    """A finished item's image and what it took."""

    index: int
    png: bytes
    timings_ms: Mapping[str, float]
    """The engine's phases (encode, diffusion, decode), plus queue, finish (with a finisher) and
    png; empty when cached."""
    cached: bool
    """Answered from the result cache, without running the pipeline."""
    batch_size: int
    """Samples in the pipeline call that made it; 0 when cached."""


@dataclass(frozen=True)
class ItemStatus:
    """One item as seen from outside: its state and, once finished, its result or error."""

    index: int
    state: JobState
    result: ItemResult | None = None
    error: VtonError | None = None


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job for GET /jobs/{id}; times are Unix seconds."""

    id: str
    user_id: str
    device: str | None
    """The worker's device; None when every item was answered from the result cache."""
    state: JobState
    step: int
    """Denoising steps done, summed over the items..."""
    total_steps: int
    """...out of steps x items: a one-item job reads "step k of n"."""
    items: tuple[ItemStatus, ...]
    error: VtonError | None
    """Why the job failed or was cancelled; for a failed job whose items all failed, item 0's."""
    created_at: float
    started_at: float | None
    finished_at: float | None
    deadline_at: float


@dataclass(frozen=True)
class Progress:
    """The job did one more denoising step: step of total_steps, as in JobSnapshot."""

    kind: ClassVar[str] = "progress"
    job_id: str
    step: int
    total_steps: int


@dataclass(frozen=True)
class ItemFinished:
    """One item finished: with its result, or with its error."""

    kind: ClassVar[str] = "item"
    job_id: str
    index: int
    result: ItemResult | None
    error: VtonError | None


@dataclass(frozen=True)
class JobFinished:
    """The job reached a final state; always the last event of a job."""

    kind: ClassVar[str] = "finished"
    job_id: str
    state: JobState
    error: VtonError | None


JobEvent = Progress | ItemFinished | JobFinished


def by_job(items: Iterable[WorkItem]) -> dict[Job, list[int]]:
    """The items' indices grouped by their job, in first-seen order."""
    groups: dict[Job, list[int]] = {}
    for item in items:
        groups.setdefault(item.job, []).append(item.index)
    return groups
