"""What /metrics shows beyond the HTTP and scheduler metrics: artifact cache counters, the store's
circuit breaker, the garment feature cache's counters and eager steps per device, and GPU memory,
read when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vton.api.observe import HttpMetrics
from vton.api.runtime import Runtime


def stats_family(
    prefix: str, name: str, what: str, labels: list[str] | None = None
) -> CounterMetricFamily | GaugeMetricFamily:
    """The metric family of one stat: a counter for a `*_total` name, else a gauge."""
    help_text = f"{what}: {name}."
    if name.endswith("_total"):
        family = f"{prefix}_{name.removesuffix('_total')}"
        return CounterMetricFamily(family, help_text, labels=labels)
    return GaugeMetricFamily(f"{prefix}_{name}", help_text, labels=labels)


class StatsCollector(Collector):
    """One component's stats, each `{prefix}_{name}`: the artifact caches' (hits, misses,
    evictions, bytes per level; store loads; stale manifests served), the store's (breaker open,
    calls it refused, calls that failed)."""

    def __init__(self, prefix: str, what: str, stats: Callable[[], dict[str, int] | None]) -> None:
        self._prefix, self._what, self._stats = prefix, what, stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        if stats is None:
            return
        for name, value in sorted(stats.items()):
            metric = stats_family(self._prefix, name, self._what)
            metric.add_metric([], value)
            yield metric


class DeviceStatsCollector(Collector):
    """Per device stats of the engine: the opt-in garment feature cache (engine/
    garment_features.py: batches served without GarmentNet (hits) or with it (misses), timelines
    held and their bytes) and the step graphs (steps run eagerly after the warm-up because no
    graph was captured for them: 0 when the warm-up covers what serving reaches)."""

    def __init__(
        self, prefix: str, what: str, stats: Callable[[], dict[str, dict[str, int]]]
    ) -> None:
        self._prefix, self._what, self._stats = prefix, what, stats

    def collect(self) -> Iterator[Metric]:
        per_device = self._stats()
        if not per_device:
            return
        for name in next(iter(per_device.values())):
            metric = stats_family(self._prefix, name, self._what, labels=["device"])
            for device, stats in per_device.items():
                metric.add_metric([device], stats[name])
            yield metric


class GpuMemoryCollector(Collector):
    """Allocated and reserved memory of each CUDA device the service runs on."""

    def __init__(self, devices: Callable[[], list[str]]) -> None:
        self._devices = devices

    def collect(self) -> Iterator[Metric]:
        cuda = [d for d in self._devices() if d.startswith("cuda")]
        if not cuda:
            return
        allocated = GaugeMetricFamily(
            "vton_gpu_memory_allocated_bytes", "Bytes held by tensors.", labels=["device"]
        )
        reserved = GaugeMetricFamily(
            "vton_gpu_memory_reserved_bytes", "Bytes reserved by the allocator.", labels=["device"]
        )
        for device in cuda:
            allocated.add_metric([device], torch.cuda.memory_allocated(device))
            reserved.add_metric([device], torch.cuda.memory_reserved(device))
        yield allocated
        yield reserved


def install_metrics(runtime: Runtime) -> HttpMetrics:
    """Registers every collector on the runtime's registry; returns the HTTP metrics."""
    registry: CollectorRegistry = runtime.registry

    def cache_stats() -> dict[str, int] | None:
        return runtime.service.loader.stats() if runtime.service else None

    def store_stats() -> dict[str, int] | None:
        return runtime.service.store.stats() if runtime.service else None

    def devices() -> list[str]:
        return [e.device for e in runtime.service.engines] if runtime.service else []

    def garment_cache_stats() -> dict[str, dict[str, int]]:
        engines = runtime.service.engines if runtime.service else []
        return {
            e.device: e.pipeline.garment_features.cache.stats()
            for e in engines
            if e.pipeline.garment_features.cache is not None
        }

    def step_stats() -> dict[str, dict[str, int]]:
        engines = runtime.service.engines if runtime.service else []
        return {
            e.device: {"eager_steps_total": e.pipeline.graphs.eager_steps}
            for e in engines
            if e.pipeline.graphs is not None
        }

    registry.register(StatsCollector("vton_cache", "Artifact cache", cache_stats))
    registry.register(StatsCollector("vton_store", "Store calls", store_stats))
    registry.register(
        DeviceStatsCollector("vton_garment_cache", "Garment feature cache", garment_cache_stats)
    )
    registry.register(DeviceStatsCollector("vton_engine", "Engine steps", step_stats))
    registry.register(GpuMemoryCollector(devices))
    return HttpMetrics(registry)
