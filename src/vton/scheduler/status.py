"""What the scheduler's callers read: job and item states, results, snapshots and events.

A job's state and per-item results are read as a JobSnapshot; its events are streamed as JobEvent.
Nothing here holds a live job (the stage records that do are in stages.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from vton.errors import VtonError


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


@dataclass(frozen=True)
class ItemResult:
    """A finished item's result and what it took."""

    value: object
    """What the worker's post-process made of the engine's output (the service: the finished
    PNG), or what the caller settled the item with at submit."""
    timings_ms: Mapping[str, float]
    """The engine's phases (encode, diffusion, decode), queue, and the post-process's own
    phases; empty when settled at submit."""
    cached: bool = False
    """Settled at submit, without the engine (the service's result cache)."""
    batch_size: int = 0
    """Samples in the pipeline call that made it; 0 when settled at submit."""


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


@dataclass(frozen=True)
class Progress:
    """The job did one more denoising step: step of total_steps, as in JobSnapshot."""

    kind: ClassVar[str] = "progress"
    job_id: str
    step: int
    total_steps: int


@dataclass(frozen=True)
class ItemFinished:
    """One item finished: with its result, or with its error (also the items a cancel or the
    deadline ended: every item of a job gets one)."""

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
