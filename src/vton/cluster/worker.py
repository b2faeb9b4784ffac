"""`vton worker`: one process per GPU host. It loads the engine on every device and warms up
(Service.build), and only then takes jobs from the queue: about two full batches per device,
so batches form across jobs in the in-host scheduler. SIGTERM (or SIGINT) stops taking jobs,
finishes the ones it holds, then exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry

from vton.cluster.handler import TryOnHandler
from vton.cluster.queue import TryOnConsumer, prefetch_concurrency, queue_settings
from vton.config import Settings
from vton.service import LoadEngine, Service
from vton.service.engine import load_engine

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, load: LoadEngine = load_engine) -> None:
    """Runs until SIGTERM or SIGINT; `load` builds one device's engine (benchmarks swap it)."""
    service = await asyncio.to_thread(Service.build, settings, CollectorRegistry(), load)
    try:
        queue = queue_settings(settings)
        concurrency = prefetch_concurrency(settings.max_batch, len(service.engines))
        handler = TryOnHandler(service, worker="")
        consumer = TryOnConsumer(queue, handler, concurrency)
        handler.worker = consumer.name
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await consumer.start()
        log.info(
            "worker %s consuming queue=%s prefix=%s concurrency=%d devices=%s",
            consumer.name,
            queue.name,
            queue.prefix,
            concurrency,
            ",".join(e.device for e in service.engines),
        )
        await stop.wait()
        log.info("worker %s stopping: finishing the jobs it holds", consumer.name)
        await consumer.stop()
    finally:
        await asyncio.to_thread(service.close)
    log.info("worker stopped")
