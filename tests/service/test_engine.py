"""Loading the engine from settings: the optimisation switches reach both pipelines; the warm-up
runs on the worker thread that serves; eager steps after it are counted in /metrics."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import torch
from prometheus_client import CollectorRegistry

from tests.api.live import make_settings
from tests.engine.test_pipeline import OPTIONS, sample
from tests.engine.test_step import RecordingCapture
from vton.api.metrics import install_metrics
from vton.config import Settings
from vton.engine.checkpoint import load_model
from vton.engine.pipeline import TryOnPipeline
from vton.engine.step import StepGraphs
from vton.service import Service
from vton.service.engine import (
    DeviceEngine,
    engine_optimizations,
    load_engine,
    model_identity,
    prepare_worker_thread,
)


def test_engine_settings_reach_the_pipelines_optimisations(tiny_model_dir) -> None:
    settings = Settings(
        _env_file=None,
        model_path=tiny_model_dir,
        compile=False,
        garment_features_once=True,
        garment_net_ahead=False,
        garment_feature_cache_gb=1.5,
        conditioning_cache_bytes=3 << 20,
        fallback_dtype="none",
    )
    engine = load_engine(settings, "cpu")
    optimizations = engine.pipeline.optimizations
    assert optimizations.garment_features_once and not optimizations.compile
    assert not optimizations.garment_net_ahead
    assert optimizations.garment_feature_cache_bytes == 3 << 29
    assert engine.pipeline.conditioning.cache.max_bytes == 3 << 20
    status = {s.name: s for s in engine.pipeline.optimization_status}
    assert status["garment_features_once"].enabled
    assert "changes the output" in status["garment_features_once"].reason
    assert not status["garment_net_ahead"].enabled
    assert status["garment_net_ahead"].reason == "disabled by setting"


def test_the_fallback_computes_what_the_main_pipeline_computes(tiny_model_dir) -> None:
    """Built from the same settings: an output-changing mode is on in both. It differs only in
    switches that keep the output (it runs eagerly and keeps no garment feature cache)."""
    settings = Settings(
        _env_file=None,
        model_path=tiny_model_dir,
        compile=True,
        garment_features_once=True,
        garment_net_ahead=False,
        garment_feature_cache_gb=1.0,
        conditioning_cache_bytes=1 << 20,
        fallback_dtype="bfloat16",
    )
    engine = load_engine(settings, "cpu")
    main, fallback = engine.pipelines.main, engine.pipelines.fallback
    assert fallback is not None and fallback.model.dtype == torch.bfloat16
    assert main.optimizations == engine_optimizations(settings)
    assert fallback.optimizations == replace(
        main.optimizations, compile=False, cuda_graphs=False, garment_feature_cache_bytes=0
    )
    assert fallback.optimizations.garment_features_once
    assert fallback.conditioning.cache.max_bytes == 1 << 20


def test_output_changing_modes_are_off_by_default(tiny_model_dir) -> None:
    settings = Settings(_env_file=None, model_path=tiny_model_dir, fallback_dtype="none")
    engine = load_engine(settings, "cpu")
    assert not engine.pipeline.optimizations.garment_features_once
    assert engine.pipeline.optimizations.garment_net_ahead  # keeps the output: on by default
    assert settings.compile  # on by default; reported off here because this is not CUDA
    compile_status = next(s for s in engine.pipeline.optimization_status if s.name == "compile")
    assert not compile_status.enabled and "CUDA" in compile_status.reason


def test_output_changing_modes_are_part_of_the_result_cache_identity(tiny_model_dir) -> None:
    plain = Settings(_env_file=None, model_path=tiny_model_dir, fallback_dtype="none")
    once = plain.model_copy(update={"garment_features_once": True})
    default_id = model_identity(plain, [load_engine(plain, "cpu")])
    once_id = model_identity(once, [load_engine(once, "cpu")])
    assert default_id.endswith(":float32")
    assert once_id == f"{default_id}:garment_features_once"


def test_the_service_warms_up_on_the_worker_thread_before_it_is_built(
    tiny_model_dir, tmp_path, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="vton.service.engine")
    settings = make_settings(tiny_model_dir, tmp_path, warmup=True, fallback_dtype="none")
    service = Service.build(settings, CollectorRegistry())
    try:
        warm_ups = [r for r in caplog.records if r.getMessage().startswith("warm-up device=cpu")]
        assert [r.threadName for r in warm_ups] == ["vton-worker-cpu"]
    finally:
        service.close()


class OverlapCountingPipeline:
    """Stands in for a pipeline's warm-up; records how many ran at once."""

    def __init__(self, state: dict[str, int], lock: threading.Lock) -> None:
        self.state, self.lock = state, lock

    def warm_up(self, sizes, options) -> dict[int, float]:
        with self.lock:
            self.state["now"] += 1
            self.state["most"] = max(self.state["most"], self.state["now"])
        time.sleep(0.05)  # long enough for a second thread to enter if nothing stops it
        with self.lock:
            self.state["now"] -= 1
        return {1: 50.0}


def test_devices_warm_up_one_after_another(tiny_model_dir) -> None:
    """torch.compile is not thread-safe: the workers' warm-ups take turns."""
    state, lock = {"now": 0, "most": 0}, threading.Lock()
    settings = Settings(_env_file=None, model_path=tiny_model_dir, warmup=True)
    engines = [
        DeviceEngine(f"cpu{i}", OverlapCountingPipeline(state, lock), None, None, None)  # type: ignore[arg-type]
        for i in range(3)
    ]
    threads = [threading.Thread(target=prepare_worker_thread, args=(e, settings)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state == {"now": 0, "most": 1}


def test_steps_run_eagerly_after_the_warm_up_are_a_metric_per_device(tiny_model_dir) -> None:
    """`vton_engine_eager_steps_total`: the steps of shapes the warm-up did not capture (0 when it
    covers what serving reaches); only devices with step graphs have it."""
    model = load_model(tiny_model_dir)
    graphed = TryOnPipeline(model)
    graphed.graphs = StepGraphs(model, capture=RecordingCapture())  # CUDA graphs need a GPU
    graphed.warm_up([1], OPTIONS)
    graphed([sample(0, 0), sample(1, 1)], OPTIONS)  # batch 2: not warmed up
    engines = [
        SimpleNamespace(device="gpu0", pipeline=graphed),  # not "cuda": no GPU memory read
        SimpleNamespace(device="cpu", pipeline=TryOnPipeline(model)),
    ]
    no_stats = SimpleNamespace(stats=lambda: {})
    service = SimpleNamespace(engines=engines, loader=no_stats, store=no_stats)
    runtime = SimpleNamespace(registry=CollectorRegistry(), service=service)
    install_metrics(runtime)  # type: ignore[arg-type]
    eager = runtime.registry.get_sample_value
    assert eager("vton_engine_eager_steps_total", {"device": "gpu0"}) == OPTIONS.steps
    assert eager("vton_engine_eager_steps_total", {"device": "cpu"}) is None
