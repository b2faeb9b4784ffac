"""The result cache: its key (stable across releases), memory in front of the store, failures that
cost only the reuse, and the workers' post-process that fills it."""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import random_image
from vton.engine.types import DiffusionOptions, TryOnOutput
from vton.errors import StoreUnavailable
from vton.scheduler import Job, WorkItem
from vton.service.finish import Finish
from vton.service.results import ResultCache, ResultKey
from vton.service.tryon import RequestItem, TryOnRequest, post_process, request_of
from vton.store.ids import Category, GarmentKey, PersonKey
from vton.store.local import LocalStore

OPTIONS = DiffusionOptions(steps=20, height=1024, width=768)
KEY = ResultKey(
    person=PersonKey("alice", Category.UPPER_BODY, "v1"),
    garment=GarmentKey("alice", "shirt", "g1"),
    model="idm-vton@fp16",
    seed=42,
    options=OPTIONS,
    finish="paste_back=1;framing=768x1024",
)


def test_the_digest_is_the_one_results_were_stored_under() -> None:
    # Computed by the release before PersonKey/GarmentKey: stored results stay reachable.
    assert KEY.digest() == "93dee615ee909f4191f15f05c6ed1f761e0e75f7d126492654197953dab6abcc"
    assert KEY.store_key() == f"results/alice/{KEY.digest()}.png"


def test_the_digest_changes_with_every_field() -> None:
    changed = [
        replace(KEY, person=PersonKey("bob", Category.UPPER_BODY, "v1")),
        replace(KEY, person=PersonKey("alice", Category.DRESSES, "v1")),
        replace(KEY, person=PersonKey("alice", Category.UPPER_BODY, "v2")),
        replace(KEY, garment=GarmentKey("alice", "jacket", "g1")),
        replace(KEY, garment=GarmentKey("alice", "shirt", "g2")),
        replace(KEY, model="other"),
        replace(KEY, seed=43),
        replace(KEY, options=replace(OPTIONS, steps=5)),
        replace(KEY, options=replace(OPTIONS, guidance_scale=2.5)),
        replace(KEY, options=replace(OPTIONS, scheduler="euler")),
        replace(KEY, finish="paste_back=0;framing=768x1024"),
        replace(KEY, finish="paste_back=1;framing=original"),
    ]
    assert len({KEY.digest(), *(key.digest() for key in changed)}) == len(changed) + 1


def test_a_result_is_kept_in_memory_and_in_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cache = ResultCache(store, memory_bytes=1024)
    assert cache.get(KEY) is None
    cache.put(KEY, b"png bytes")
    assert store.get(KEY.store_key()) == b"png bytes"
    assert cache.memory.get(KEY) == b"png bytes"
    restarted = ResultCache(store, memory_bytes=1024)
    assert restarted.get(KEY) == b"png bytes"  # from the store, then in memory
    assert restarted.memory.get(KEY) == b"png bytes"


def test_memory_is_bounded_in_bytes(tmp_path: Path) -> None:
    cache = ResultCache(LocalStore(tmp_path), memory_bytes=10)
    other = replace(KEY, seed=1)
    cache.put(KEY, b"12345")
    cache.put(other, b"123456")
    assert cache.memory.get(KEY) is None and cache.memory.get(other) == b"123456"
    assert cache.get(KEY) == b"12345"  # still in the store


class BrokenStore(LocalStore):
    def get(self, key: str) -> bytes:
        raise StoreUnavailable("the store is down")

    def put(self, key: str, data: bytes) -> None:
        raise StoreUnavailable("the store is down")


def test_forgetting_drops_a_users_results_or_one_garments(tmp_path: Path) -> None:
    cache = ResultCache(LocalStore(tmp_path), memory_bytes=1 << 20)
    jacket = replace(KEY, garment=GarmentKey("alice", "jacket", "g1"))
    bobs = replace(KEY, person=PersonKey("bob", Category.UPPER_BODY, "v1"))
    for key in (KEY, jacket, bobs):
        cache.memory.put(key, b"png")
    assert cache.forget("alice", "shirt") == 1
    assert cache.memory.lru_order() == [jacket, bobs]
    assert cache.forget("alice") == 1
    assert cache.memory.lru_order() == [bobs]


def test_a_failing_store_is_a_miss_and_a_failed_put_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResultCache(BrokenStore(tmp_path), memory_bytes=1024)
    with caplog.at_level(logging.WARNING, logger="vton.service.results"):
        assert cache.get(KEY) is None
        cache.put(KEY, b"png bytes")
    assert [r.getMessage().split(" for ")[0] for r in caplog.records] == [
        "result cache get failed",
        "result cache put failed",
    ]
    assert cache.get(KEY) == b"png bytes"  # memory still serves it


def _work_item(finish: Finish, key: ResultKey | None) -> WorkItem:
    request = TryOnRequest("single", (RequestItem("shirt", key),), 0.0, {}, 0.0, {0: finish})
    job = Job("alice", 1, OPTIONS.steps, 60.0, "cpu", lambda _job: None, request)
    return WorkItem(job, 0, None, OPTIONS, 0.0)  # type: ignore[arg-type]  # the sample is unread


def test_post_process_finishes_before_the_only_encode_and_caches_that(tmp_path: Path) -> None:
    engine_image = random_image(1, 96, 128)
    person, mask = random_image(2, 96, 128), Image.new("L", (96, 128), 0)
    mask.paste(255, (24, 32, 72, 96))
    finish = Finish(person, mask, None, True, "768x1024")
    cache = ResultCache(LocalStore(tmp_path), memory_bytes=2**20)
    timings: dict[str, float] = {"diffusion": 1.0}
    output = TryOnOutput(image=None, pil=engine_image)  # type: ignore[arg-type]
    item = _work_item(finish, KEY)
    png = post_process(cache, item, output, timings)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == "PNG"
    assert decoded.convert("RGB").tobytes() == finish.apply(engine_image).tobytes()
    assert {"diffusion", "finish", "png"} == set(timings)
    assert cache.get(KEY) == png  # the cache holds the finished image
    assert not request_of(item.job).finishes  # the job no longer holds the person images


def test_post_process_that_fails_caches_nothing(tmp_path: Path) -> None:
    class BrokenFinish(Finish):
        def apply(self, image: Image.Image) -> Image.Image:
            raise ValueError("no mask")

    finish = BrokenFinish(random_image(3), Image.new("L", (96, 128)), None, True, "768x1024")
    cache = ResultCache(LocalStore(tmp_path), memory_bytes=2**20)
    output = TryOnOutput(image=None, pil=random_image(4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no mask"):
        post_process(cache, _work_item(finish, KEY), output, {})
    assert cache.get(KEY) is None


def test_post_process_of_an_uncached_item_caches_nothing(tmp_path: Path) -> None:
    image = random_image(5)
    as_is = Finish(random_image(6), Image.new("L", (96, 128)), None, False, "768x1024")
    cache = ResultCache(LocalStore(tmp_path), memory_bytes=2**20)
    output = TryOnOutput(image=None, pil=image)  # type: ignore[arg-type]
    png = post_process(cache, _work_item(as_is, None), output, {})
    assert Image.open(io.BytesIO(png)).tobytes() == image.tobytes()
    assert len(cache.memory) == 0
