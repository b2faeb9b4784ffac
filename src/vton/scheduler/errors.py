"""What the scheduler raises, or records on a job or an item; the API maps each to a status.

    VtonError (vton.errors)
    └── SchedulerError
        ├── QueueFull         no worker has room, or none could start the job  (429, Retry-After)
        │                     before its deadline; .retry_after_s
        ├── SchedulerClosed   the scheduler is shutting down or stopped         (503)
        ├── JobTimeout        the job passed its deadline (recorded on the job) (504)
        ├── JobCancelled      by the client or by shutdown (recorded on the job)
        ├── OutOfMemory       an item ran out of device memory even alone      (item error)
        ├── NonFiniteOutput   an item's image was non-finite or black twice    (item error)
        └── EngineFailed      the pipeline failed on an item for another reason (item error)

An unknown job id, or another user's, raises vton.errors.NotRegistered (404). Errors the pipeline
raises on purpose for one item (vton.errors.InvalidInput, ...) are recorded on that item unchanged.
"""

from __future__ import annotations

from vton.errors import VtonError


class SchedulerError(VtonError):
    """Base of the scheduler's errors."""


class QueueFull(SchedulerError):
    """No worker has room for the job or is expected to finish it before its deadline; try again
    after retry_after_s seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SchedulerClosed(SchedulerError):
    """The scheduler does not take jobs: it is shutting down or was never started."""


class JobTimeout(SchedulerError):
    """The job did not finish before its deadline."""


class JobCancelled(SchedulerError):
    """The job was cancelled; the message says by whom."""


class OutOfMemory(SchedulerError):
    """The item ran out of device memory even in a batch of its own."""


class NonFiniteOutput(SchedulerError):
    """The item's image was non-finite or all black, also after the retry in a safer precision."""


class EngineFailed(SchedulerError):
    """The pipeline raised an unexpected error on the item; the message carries it."""
