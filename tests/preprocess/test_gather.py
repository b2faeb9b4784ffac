"""Gathering a try-on's artifacts: content, errors, versions, caches, parallelism."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import random_image
from tests.preprocess.conftest import FakeTextEncoder, OutageStore, RecordingStore, person_inputs
from tests.s3_server import S3TestServer, make_s3_store
from vton.cache import TieredCache
from vton.errors import CorruptArtifact, InvalidInput, NotRegistered, StoreUnavailable
from vton.preprocess import ArtifactLoader, register_garment, register_person
from vton.preprocess import gather as gather_module
from vton.store import S3Store, Store, keys
from vton.store.breaker import BreakerConfig, GuardedStore
from vton.store.codecs import encode_png
from vton.store.ids import Category

ROOT = "users/u1/vton-cache/"


def register_all(store: Store, seed: int = 0) -> None:
    """Person u1 for upper_body and lower_body; garments top (upper) and skirt (lower)."""
    photo, masks, pose = person_inputs(seed)
    register_person(store, "u1", photo, {**masks, "lower_body": masks["upper_body"]}, pose)
    encoder = FakeTextEncoder()
    register_garment(store, encoder, "u1", "top", random_image(seed + 5), "a top", "upper_body")
    register_garment(store, encoder, "u1", "skirt", random_image(seed + 6), "a skirt", "lower")


def test_gather_pairs_each_garment_with_its_category(
    artifact_store: Store, loader: ArtifactLoader
) -> None:
    register_all(artifact_store)
    skirt, top = loader.gather("u1", ["skirt", "top"])
    assert (skirt.garment.clothing_id, skirt.person.category) == ("skirt", Category.LOWER_BODY)
    assert (top.garment.clothing_id, top.person.category) == ("top", Category.UPPER_BODY)
    person = top.person
    assert (person.human_img.mode, person.mask.mode, person.pose.size) == ("RGB", "L", (768, 1024))
    assert person.fit is not None and person.fit.original_size == (300, 450)
    assert top.garment.text.prompt_embeds.shape == (77, 16)
    forced = loader.gather("u1", ["skirt"], category="upper_body")[0]
    assert forced.person.category is Category.UPPER_BODY


def test_each_person_and_garment_says_where_its_artifacts_came_from(
    artifact_store: Store, loader: ArtifactLoader
) -> None:
    photo, masks, pose = person_inputs(0)
    register_person(artifact_store, "u1", photo, masks, pose, framing="crop")
    register_garment(artifact_store, FakeTextEncoder(), "u1", "top", random_image(5), "t", "upper")

    def sources() -> tuple[str, str]:
        inputs = loader.gather("u1", ["top"])[0]
        return inputs.person.source, inputs.garment.source

    assert sources() == ("store", "store")
    assert sources() == ("memory", "memory")
    loader.cache.l1.discard(keys.person_photo("u1"))  # the photo counts, as the slowest part
    assert sources() == ("disk", "memory")
    loader.cache.l1.discard(keys.text("u1", "top"))
    assert sources() == ("memory", "disk")


def test_missing_person_and_garment_are_both_named(
    artifact_store: Store, loader: ArtifactLoader
) -> None:
    register_garment(artifact_store, FakeTextEncoder(), "u1", "top", random_image(1), "t", "upper")
    with pytest.raises(NotRegistered) as info:
        loader.gather("u1", ["top", "ghost"])
    assert "person of user 'u1'" in str(info.value) and "'ghost'" in str(info.value)


def test_a_category_the_person_lacks_is_named(
    artifact_store: Store, loader: ArtifactLoader
) -> None:
    photo, masks, pose = person_inputs(2)
    register_person(artifact_store, "u1", photo, masks, pose)
    register_garment(artifact_store, FakeTextEncoder(), "u1", "d", random_image(3), "d", "dresses")
    with pytest.raises(NotRegistered, match=r"not registered for dresses \(registered: upper_body"):
        loader.gather("u1", ["d"])


@pytest.mark.parametrize(
    ("user_id", "clothing_ids"), [("../u1", ["top"]), ("u1", ["a/b"]), ("u1", []), ("", ["top"])]
)
def test_bad_ids_touch_no_key(artifact_store: Store, user_id: str, clothing_ids: list) -> None:
    store = RecordingStore(artifact_store)
    loader = ArtifactLoader(store, TieredCache.create(1 << 20, 0, Path("unused")))
    with pytest.raises(InvalidInput):
        loader.gather(user_id, clothing_ids)
    assert store.calls == []


def test_a_re_registered_person_is_never_served_stale(
    artifact_store: Store, loader: ArtifactLoader, tmp_path: Path
) -> None:
    register_all(artifact_store, seed=0)
    before = loader.gather("u1", ["top"])[0].person
    loader.gather("u1", ["top"])  # L1 and L2 both warm
    register_all(artifact_store, seed=10)  # no forget_person: versions alone must suffice
    after = loader.gather("u1", ["top"])[0].person
    fresh = np.asarray(register_photo_as_stored(artifact_store))
    assert after.version != before.version
    assert np.array_equal(np.asarray(after.human_img), fresh)
    assert not np.array_equal(np.asarray(before.human_img), fresh)
    # A restarted process with the same disk cache does not serve the old one either.
    restarted = ArtifactLoader(
        artifact_store, TieredCache.create(1 << 30, 1 << 30, tmp_path / "cache")
    )
    assert np.array_equal(np.asarray(restarted.gather("u1", ["top"])[0].person.human_img), fresh)


def register_photo_as_stored(store: Store):
    from vton.store.codecs import decode_png

    key = keys.person_image("u1", Category.UPPER_BODY, "human_img")
    return decode_png(key, store.get(key), "RGB")[0]


def test_a_corrupt_artifact_is_named_and_not_cached(
    artifact_store: Store, loader: ArtifactLoader
) -> None:
    register_all(artifact_store)
    mask_key = ROOT + "upper/mask.png"
    good = artifact_store.get(mask_key)
    artifact_store.put(mask_key, good[: len(good) // 2])
    with pytest.raises(CorruptArtifact, match=r"users/u1/vton-cache/upper/mask\.png"):
        loader.gather("u1", ["top"])
    assert mask_key not in loader.cache.l1.lru_order()
    assert loader.cache.l2 is not None and mask_key not in loader.cache.l2.lru_order()
    artifact_store.put(mask_key, good)
    assert loader.gather("u1", ["top"])[0].person.mask.size == (768, 1024)


def test_an_artifact_of_another_version_is_refused(
    artifact_store: Store, loader: ArtifactLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gather_module, "_STALE_RETRIES", (0.0,))
    register_all(artifact_store)
    pose_key = ROOT + "upper/pose.png"
    artifact_store.put(pose_key, encode_png(random_image(9), "0ld"))
    with pytest.raises(CorruptArtifact, match=r"pose\.png: carries version 0ld"):
        loader.gather("u1", ["top"])


def test_a_gather_during_re_registration_waits_for_the_manifest(
    artifact_store: Store, loader: ArtifactLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Images of the new version land before the manifest: the gather retries, then sees it."""
    retries: list[float] = []
    sleep = time.sleep
    monkeypatch.setattr(gather_module.time, "sleep", lambda s: (retries.append(s), sleep(s)))
    register_all(artifact_store, seed=0)
    old = loader.gather("u1", ["top"])[0].person.version
    manifest_key = keys.person_manifest("u1")
    images_written, release = threading.Event(), threading.Event()

    class HoldManifest(RecordingStore):
        def put(self, key: str, data: bytes) -> None:
            if key == manifest_key:
                images_written.set()
                release.wait(5)
            super().put(key, data)

    photo, masks, pose = person_inputs(20)
    writer = threading.Thread(
        target=register_person, args=(HoldManifest(artifact_store), "u1", photo, masks, pose)
    )
    writer.start()
    assert images_written.wait(10)
    loader.cache.invalidate("")  # force a store read: the manifest says old, the images say new
    threading.Timer(0.1, release.set).start()
    person = loader.gather("u1", ["top"])[0].person
    writer.join()
    assert retries, "the gather never saw the half-written registration"
    assert person.version != old
    assert np.array_equal(
        np.asarray(person.human_img), np.asarray(register_photo_as_stored(artifact_store))
    )


def test_loads_are_parallel(s3_server: S3TestServer, s3_store: S3Store, tmp_path: Path) -> None:
    """7 objects (2 manifests, 3 person images, garment image, text), each delayed by the server:
    two rounds (manifests, then artifacts) in parallel; seven one after the other."""
    register_all(s3_store)
    delay = 0.25
    s3_server.delay_s = delay

    def timed(workers: int) -> float:
        cold = ArtifactLoader(s3_store, TieredCache.create(1 << 30, 0, tmp_path), workers=workers)
        start = time.perf_counter()
        cold.gather("u1", ["top"])
        cold.close()
        return time.perf_counter() - start

    parallel = timed(workers=16)
    sequential = timed(workers=1)
    print(f"parallel {parallel:.3f} s, sequential {sequential:.3f} s, delay {delay} s")
    assert parallel < 2 * delay + 0.4, parallel  # 0.4 s for decoding and a busy machine
    assert sequential > 7 * delay, sequential


def test_fifty_concurrent_gathers_load_each_artifact_once(
    s3_server: S3TestServer, s3_store: S3Store, loader: ArtifactLoader
) -> None:
    register_all(s3_store)
    s3_server.delay_s = 0.1
    s3_server.gets.clear()
    loader = ArtifactLoader(s3_store, loader.cache, workers=16)
    start = threading.Barrier(50)

    def request() -> str:
        start.wait()
        return loader.gather("u1", ["top"])[0].person.version

    with ThreadPoolExecutor(50) as pool:
        assert len(set(pool.map(lambda _: request(), range(50)))) == 1
    artifacts = {p: n for p, n in s3_server.gets.items() if not p.endswith(".json")}
    assert len(artifacts) == 5 and set(artifacts.values()) == {1}
    assert loader.stats()["store_loads_total"] == 5
    loader.close()


def test_an_unreachable_store_is_unavailable_then_recovers(
    s3_server: S3TestServer, tmp_path: Path
) -> None:
    server = S3TestServer()
    server.start()
    store = make_s3_store(server, max_attempts=1)
    register_all(store)
    loader = ArtifactLoader(store, TieredCache.create(1 << 30, 0, tmp_path))
    server.stop()
    try:
        with pytest.raises(StoreUnavailable):
            loader.gather("u1", ["top"])
    finally:
        server.start()
    assert loader.gather("u1", ["top"])[0].garment.clothing_id == "top"
    server.stop()
    loader.close()


# -- the store down: remembered manifests, cached artifacts ------------------------------------


OPEN_S = 0.2


def outage_loader(
    store: Store, tmp_path: Path, stale_s: float
) -> tuple[OutageStore, ArtifactLoader]:
    """A loader on `store` behind an OutageStore and the breaker, as the service has it."""
    outage = OutageStore(store)
    config = BreakerConfig(call_timeout_s=5.0, failures_to_open=2, open_s=OPEN_S)
    guarded = GuardedStore(outage, config)
    cache = TieredCache.create(256 << 20, 256 << 20, tmp_path / "cache")
    return outage, ArtifactLoader(guarded, cache, workers=8, stale_if_error_s=stale_s)


@pytest.fixture
def warm(artifact_store: Store, tmp_path: Path) -> Iterator[tuple[OutageStore, ArtifactLoader]]:
    """u1 registered (register_all) and `top` gathered once through an outage loader (300 s)."""
    register_all(artifact_store)
    outage, loader = outage_loader(artifact_store, tmp_path / "warm", stale_s=300)
    loader.gather("u1", ["top"])
    yield outage, loader
    loader.close()


def test_the_store_down_serves_cached_try_ons_for_the_stale_bound_only(
    artifact_store: Store, tmp_path: Path
) -> None:
    register_all(artifact_store)
    outage, loader = outage_loader(artifact_store, tmp_path, stale_s=1.5)
    warm = loader.gather("u1", ["top", "skirt"])
    assert [i.garment.manifest_age_s for i in warm] == [None, None]
    outage.down = True
    for _ in range(3):  # the breaker opens on the way: the same answer, faster
        served = loader.gather("u1", ["top", "skirt"])
        assert [i.garment.version for i in served] == [i.garment.version for i in warm]
        assert all(i.person.manifest_age_s is not None for i in served)
        assert all(0 <= (i.garment.manifest_age_s or -1) < 1.5 for i in served)
        assert all(i.person.source == i.garment.source == "memory" for i in served)
    with pytest.raises(StoreUnavailable):  # what is not cached needs the store
        loader.person_manifest("u1")  # the catalog's reads are never stale
    time.sleep(1.6)
    with pytest.raises(StoreUnavailable) as caught:
        loader.gather("u1", ["top"])
    assert caught.value.retry_after_s >= 1.0
    loader.close()


def test_a_garment_never_loaded_fails_while_the_store_is_down(
    warm: tuple[OutageStore, ArtifactLoader],
) -> None:
    outage, loader = warm
    loader.cache.invalidate(keys.text("u1", "top"))  # evicted from both levels
    outage.down = True
    with pytest.raises(StoreUnavailable):
        loader.gather("u1", ["top"])
    with pytest.raises(StoreUnavailable):
        loader.gather("u1", ["skirt"])  # its manifest was never read


def test_once_the_store_answers_a_re_registration_wins_over_the_remembered_one(
    artifact_store: Store, warm: tuple[OutageStore, ArtifactLoader]
) -> None:
    outage, loader = warm
    old = loader.gather("u1", ["top"])[0]
    outage.down = True
    register_all(artifact_store, seed=10)  # another replica re-registers meanwhile
    assert loader.gather("u1", ["top"])[0].garment.version == old.garment.version  # stale
    outage.down = False
    time.sleep(OPEN_S)
    loader.person_manifest("u1")  # the breaker's trial call: it closes
    new = loader.gather("u1", ["top"])[0]
    assert new.garment.version != old.garment.version and new.person.version != old.person.version
    assert new.garment.manifest_age_s is None and new.garment.source == "store"
    outage.down = True  # and now the new registration is what stands in
    assert loader.gather("u1", ["top"])[0].garment.version == new.garment.version


def test_a_deleted_or_re_registered_garment_is_forgotten_by_this_service(
    warm: tuple[OutageStore, ArtifactLoader],
) -> None:
    outage, loader = warm
    loader.forget_garment("u1", "top")  # what the catalog does after deleting or registering it
    outage.down = True
    with pytest.raises(StoreUnavailable):
        loader.gather("u1", ["top"])
