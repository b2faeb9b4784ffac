"""The scheduler's Prometheus metrics, on a registry the API exposes at /metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from vton.scheduler.errors import JobTimeout, NonFiniteOutput, OutOfMemory
from vton.scheduler.status import ItemStatus, JobState

BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
PHASE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def item_outcome(status: ItemStatus) -> str:
    """The outcome label of a finished item."""
    if status.state is JobState.SUCCEEDED:
        return "cached" if status.result is not None and status.result.cached else "succeeded"
    if status.state is JobState.CANCELLED:
        return "cancelled"
    for error_type, label in (
        (JobTimeout, "timeout"),
        (OutOfMemory, "out_of_memory"),
        (NonFiniteOutput, "non_finite"),
    ):
        if isinstance(status.error, error_type):
            return label
    return "error"


class SchedulerMetrics:
    """Queue depth, batch sizes, phase timings and item outcomes; pass the API's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.queue_depth = Gauge(
            "vton_queue_depth", "Items waiting for a batch.", ["device"], registry=self.registry
        )
        self.batch_size = Histogram(
            "vton_batch_size",
            "Samples per pipeline call.",
            ["device"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_splits = Counter(
            "vton_batch_splits",
            "Pipeline calls split in halves after an error (mostly out of memory).",
            ["device"],
            registry=self.registry,
        )
        self.phase_seconds = Histogram(
            "vton_phase_seconds",
            "Time per item and phase: queue, encode, diffusion, decode, finish, png; batch per "
            "call.",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=self.registry,
        )
        self.items = Counter(
            "vton_items",
            "Finished items by outcome.",
            ["outcome"],
            registry=self.registry,
        )

    def track_queue(self, device: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(device).set_function(depth)

    def observe_batch(self, device: str, size: int, seconds: float) -> None:
        self.batch_size.labels(device).observe(size)
        self.phase_seconds.labels("batch").observe(seconds)

    def observe_phases(self, timings_ms: Mapping[str, float]) -> None:
        for phase, ms in timings_ms.items():
            self.phase_seconds.labels(phase).observe(ms / 1000.0)

    def count_items(self, items: tuple[ItemStatus, ...]) -> None:
        for item in items:
            self.items.labels(item_outcome(item)).inc()
