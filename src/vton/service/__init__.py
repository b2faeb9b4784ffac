"""The service: the engine on each device, the scheduler, the artifact loader and catalog, wired
from Settings; the API holds one Service and calls its parts.

    service = Service.build(settings, registry)   # loads models, warms up, starts the scheduler
    service.tryons.submit_reference(...); service.catalog.register_garment(...)
    service.close()                               # finishes running batches, cancels the queue
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from prometheus_client import CollectorRegistry

from vton.cache import TieredCache
from vton.config import Settings
from vton.engine.gc_pause import freeze_start_up_objects, release_start_up_objects
from vton.engine.text import PromptEncoder
from vton.preprocess import ArtifactLoader
from vton.preprocess.body.analyze import PersonAnalyzer
from vton.preprocess.budget import DecodeBudget
from vton.scheduler import Scheduler, SchedulerConfig, SchedulerMetrics
from vton.service.catalog import Catalog
from vton.service.engine import (
    DeviceEngine,
    load_engine,
    model_identity,
    prepare_worker_thread,
    resolve_devices,
)
from vton.service.results import ResultCache
from vton.service.tryon import TryOnService, post_process
from vton.store import open_store
from vton.store.breaker import BreakerConfig, GuardedStore

log = logging.getLogger(__name__)

LoadEngine = Callable[[Settings, str], DeviceEngine]


@dataclass
class Service:
    settings: Settings
    engines: list[DeviceEngine]
    loader: ArtifactLoader
    scheduler: Scheduler
    tryons: TryOnService
    catalog: Catalog
    store: GuardedStore

    @classmethod
    def build(
        cls,
        settings: Settings,
        registry: CollectorRegistry,
        load: LoadEngine = load_engine,
    ) -> Service:
        """Everything from settings; `load` builds one device's engine (tests wrap it)."""
        devices = resolve_devices(settings.devices)
        engines = [load(settings, device) for device in devices]
        analyzers = load_analyzers(settings, devices)
        store = open_store_guarded(settings)
        cache = TieredCache.create(
            settings.l1_cache_bytes, settings.l2_cache_bytes, settings.cache_dir
        )
        loader = ArtifactLoader(store, cache, settings.load_workers, settings.stale_if_error_s)
        config = SchedulerConfig(
            max_queue=settings.max_queue,
            batch_window_ms=settings.batch_window_ms,
            max_batch=settings.max_batch,
            request_timeout_s=settings.request_timeout_s,
            devices=devices,
            job_ttl_s=settings.job_ttl_s,
        )
        results = ResultCache(store, settings.result_cache_bytes)
        scheduler = Scheduler(
            config,
            {engine.device: engine.pipelines for engine in engines},
            partial(post_process, results),
            metrics=SchedulerMetrics(registry),
            prepare={e.device: partial(prepare_worker_thread, e, settings) for e in engines},
        )
        scheduler.start()  # returns once every device has warmed up on its worker thread
        tryons = TryOnService(
            loader,
            scheduler,
            results,
            model_identity(settings, engines),
            (settings.width, settings.height),
            job_timeout_s=settings.job_timeout_s,
        )
        encoder = PromptEncoder(engines[0].pipeline.model)
        freeze_start_up_objects()
        log.info("service ready devices=%s store=%s", ",".join(devices), store.url)
        uploads = DecodeBudget(settings.decode_memory_bytes, settings.max_image_pixels)
        catalog = Catalog(loader, encoder, analyzers, uploads=uploads)
        return cls(settings, engines, loader, scheduler, tryons, catalog, store)

    @property
    def preprocessing(self) -> bool:
        """A person registers from a photo alone."""
        return bool(self.catalog.analyzers)

    def delete_person(self, user_id: str) -> None:
        """Removes the user's person and its stored results, then every cached result and job
        that shows it (also when there was no person: NotRegistered after the purge)."""
        try:
            self.catalog.delete_person(user_id)
        finally:
            self.tryons.forget_person(user_id)

    def delete_garment(self, user_id: str, clothing_id: str) -> None:
        """Removes the user's garment, then every cached result and job that shows it (also when
        there was no such garment: NotRegistered after the purge)."""
        try:
            self.catalog.delete_garment(user_id, clothing_id)
        finally:
            self.tryons.forget_garment(user_id, clothing_id)

    def store_reachable(self) -> bool:
        """From the circuit breaker's state, without waiting on the store."""
        return self.store.reachable()

    def close(self) -> None:
        self.scheduler.shutdown()
        self.loader.close()
        self.store.close()
        release_start_up_objects()


def open_store_guarded(settings: Settings) -> GuardedStore:
    """The store behind a per-call deadline and a circuit breaker, as the request path uses it."""
    config = BreakerConfig(
        call_timeout_s=settings.store_call_timeout_s,
        failures_to_open=settings.store_breaker_failures,
        open_s=settings.store_breaker_open_s,
    )
    return GuardedStore(open_store(settings), config)


def load_analyzers(settings: Settings, devices: Sequence[str]) -> list[PersonAnalyzer]:
    """Person preprocessing on every device, or none when no weights folder is in force. A
    folder that is named but incomplete or wrong fails the start (CheckpointError names it)."""
    weights = settings.preprocess_weights()
    if weights is None:
        log.info("person preprocessing off: masks and pose must be uploaded (VTON_PREPROCESS_PATH)")
        return []
    analyzers = [PersonAnalyzer.load(weights, d, settings.weights_cache_dir) for d in devices]
    log.info("person preprocessing weights=%s devices=%s", weights, ",".join(devices))
    return analyzers
