from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from tests.api.live import make_settings
from vton.service import Service


def test_a_built_service_is_frozen_until_it_closes(tiny_model_dir, tmp_path) -> None:
    settings = make_settings(tiny_model_dir, tmp_path, warmup=False, fallback_dtype="none")
    service = Service.build(settings, CollectorRegistry())
    try:
        assert gc.get_freeze_count() > 0
    finally:
        service.close()
    assert gc.get_freeze_count() == 0
