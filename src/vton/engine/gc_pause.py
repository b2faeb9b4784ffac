"""Keeps Python's full garbage collections off the request path.

A started service holds hundreds of thousands of long-lived objects (the libraries, the models,
Dynamo's and Inductor's compiled graphs). A full (generation 2) collection walks all of them with
the GIL held, stalling the worker thread's launches and the HTTP server alike: measured 0.4 s on
the tiny model compiled on a CPU, 0.5-1.1 s for the full-size model warmed up on H100 hosts
(~1.06 million objects); they run whenever enough objects have survived since the last
one, so the first may land on a user's request. Collecting once at the end of start-up and then
freezing (`gc.freeze`) what is alive moves those objects out of every later collection.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_start_up_objects() -> float:
    """A full collection now, then every surviving object frozen; returns that collection's
    milliseconds (about what each full collection would otherwise have cost a request)."""
    start = time.perf_counter()
    gc.collect()
    collect_ms = (time.perf_counter() - start) * 1000.0
    gc.freeze()
    log.info(
        "gc: start-up objects frozen count=%d full_collection_ms=%.0f",
        gc.get_freeze_count(),
        collect_ms,
    )
    return collect_ms


def release_start_up_objects() -> None:
    """Frozen objects back to the oldest generation, so a closed service's cycles are collected."""
    gc.unfreeze()
