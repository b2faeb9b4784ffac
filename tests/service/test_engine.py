"""Loading the engine from settings: the optimisation switches reach the pipeline; the warm-up
runs on the worker thread that serves."""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import CollectorRegistry

from tests.api.live import make_settings
from vton.config import Settings
from vton.service import Service
from vton.service.engine import (
    DeviceEngine,
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
        fold_zero_garment_keys=True,
        fallback_dtype="none",
    )
    engine = load_engine(settings, "cpu")
    optimizations = engine.pipeline.optimizations
    assert optimizations.garment_features_once and not optimizations.compile
    assert not optimizations.garment_net_ahead
    assert optimizations.garment_feature_cache_bytes == 3 << 29
    status = {s.name: s for s in engine.pipeline.optimization_status}
    assert status["garment_features_once"].enabled
    assert "changes the output" in status["garment_features_once"].reason
    assert not status["garment_net_ahead"].enabled
    assert status["garment_net_ahead"].reason == "disabled by setting"
    assert status["fold_zero_garment_keys"].enabled


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
