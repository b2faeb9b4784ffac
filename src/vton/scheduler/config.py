"""The scheduler's settings; the API fills them from the global Settings (VTON_* variables)."""

from __future__ import annotations

from dataclasses import dataclass

from vton.errors import InvalidInput


@dataclass(frozen=True)
class SchedulerConfig:
    """How much the scheduler queues, how it batches and where it runs.

    max_queue is per worker (device) and counts items (samples), not requests: a 10-garment batch
    request takes 10 places. Cached items take none.
    """

    max_queue: int = 64
    """Items that may wait on one worker before submit raises QueueFull (VTON_MAX_QUEUE)."""
    batch_window_ms: float = 20.0
    """How long the oldest waiting item waits for compatible company (VTON_BATCH_WINDOW_MS)."""
    max_batch: int = 8
    """Samples per pipeline call at most (VTON_MAX_BATCH)."""
    request_timeout_s: float = 120.0
    """From submit to the job's deadline; past it the job fails with JobTimeout."""
    devices: tuple[str, ...] = ("cpu",)
    """One worker per device, in this order (VTON_DEVICES)."""
    job_ttl_s: float = 600.0
    """How long a finished job kept by id (an asynchronous one) stays readable, images and all."""

    def __post_init__(self) -> None:
        for name in ("max_queue", "max_batch"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("request_timeout_s", "job_ttl_s"):
            if getattr(self, name) <= 0:
                raise InvalidInput(f"{name} must be > 0, got {getattr(self, name)}")
        if self.batch_window_ms < 0:
            raise InvalidInput(f"batch_window_ms must be >= 0, got {self.batch_window_ms}")
        if not self.devices or len(set(self.devices)) != len(self.devices):
            raise InvalidInput(f"devices must be distinct and not empty, got {self.devices}")
