"""What /metrics shows beyond the HTTP and scheduler metrics: artifact cache counters and GPU
memory, read when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vton.api.observe import HttpMetrics
from vton.api.runtime import Runtime


class CacheCollector(Collector):
    """The artifact caches' stats (hits, misses, evictions, bytes per level; store loads)."""

    def __init__(self, stats: Callable[[], dict[str, int] | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        if stats is None:
            return
        for name, value in sorted(stats.items()):
            if name.endswith("_total"):
                metric: Metric = CounterMetricFamily(
                    f"vton_cache_{name.removesuffix('_total')}", f"Artifact cache: {name}."
                )
            else:
                metric = GaugeMetricFamily(f"vton_cache_{name}", f"Artifact cache: {name}.")
            metric.add_metric([], value)
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

    def devices() -> list[str]:
        return [e.device for e in runtime.service.engines] if runtime.service else []

    registry.register(CacheCollector(cache_stats))
    registry.register(GpuMemoryCollector(devices))
    return HttpMetrics(registry)
