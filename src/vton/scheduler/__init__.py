"""Jobs, queues, batching across requests, progress, cancellation and device routing.

The API builds a SchedulerConfig and one DevicePipelines per device, starts a Scheduler, and calls
submit / get / cancel; it reads a job with Job.snapshot() and streams Job.events(). Errors are in
vton.scheduler.errors (tree in its docstring).
"""

from vton.scheduler.config import SchedulerConfig
from vton.scheduler.errors import (
    EngineFailed,
    JobCancelled,
    JobTimeout,
    NonFiniteOutput,
    OutOfMemory,
    QueueFull,
    SchedulerClosed,
    SchedulerError,
)
from vton.scheduler.job import Job
from vton.scheduler.metrics import SchedulerMetrics
from vton.scheduler.result_cache import InMemoryResultCache, ResultCache, ResultKey
from vton.scheduler.scheduler import Scheduler
from vton.scheduler.types import (
    DevicePipelines,
    Finisher,
    ItemFinished,
    ItemResult,
    ItemStatus,
    JobEvent,
    JobFinished,
    JobSnapshot,
    JobState,
    Pipeline,
    Progress,
)

__all__ = [
    "DevicePipelines",
    "EngineFailed",
    "Finisher",
    "InMemoryResultCache",
    "ItemFinished",
    "ItemResult",
    "ItemStatus",
    "Job",
    "JobCancelled",
    "JobEvent",
    "JobFinished",
    "JobSnapshot",
    "JobState",
    "JobTimeout",
    "NonFiniteOutput",
    "OutOfMemory",
    "Pipeline",
    "Progress",
    "QueueFull",
    "ResultCache",
    "ResultKey",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerConfig",
    "SchedulerError",
    "SchedulerMetrics",
]
