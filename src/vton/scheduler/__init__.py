"""Jobs, queues, batching across requests, progress, cancellation and device routing.

The service builds a SchedulerConfig, one DevicePipelines per device and its PostProcess, starts a
Scheduler, and calls submit / get / cancel; it reads a job with Job.snapshot() and streams
Job.events(). What callers read is in vton.scheduler.status, what workers are given and pass
between their stages in vton.scheduler.stages; errors are in vton.scheduler.errors (tree in its
docstring).
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
from vton.scheduler.scheduler import Scheduler
from vton.scheduler.stages import DevicePipelines, Pipeline, PostProcess, WorkItem
from vton.scheduler.status import (
    ItemFinished,
    ItemResult,
    ItemStatus,
    JobEvent,
    JobFinished,
    JobSnapshot,
    JobState,
    Progress,
)

__all__ = [
    "DevicePipelines",
    "EngineFailed",
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
    "PostProcess",
    "Progress",
    "QueueFull",
    "Scheduler",
    "SchedulerClosed",
    "SchedulerConfig",
    "SchedulerError",
    "SchedulerMetrics",
    "WorkItem",
]
