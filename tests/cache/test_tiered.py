"""L1 over L2 over the store: hits, misses, sources, versions, and what is never cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from vton.cache import Source, TieredCache, slowest
from vton.errors import CorruptArtifact

KEY = "users/u1/vton-cache/upper/human_img.png"


class Stored:
    """A fake store object: counts fetches; `decode` refuses bytes starting with `bad`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.fetches = 0

    def fetch(self) -> bytes:
        self.fetches += 1
        return self.data

    @staticmethod
    def decode(data: bytes) -> tuple[str, int]:
        if data.startswith(b"bad"):
            raise CorruptArtifact(f"{KEY}: does not decode")
        return data.decode(), len(data)


def get(cache: TieredCache, stored: Stored, version: str = "v1") -> str:
    return cache.get(KEY, version, stored.fetch, stored.decode).value


def test_l1_then_l2_then_store(tmp_path: Path) -> None:
    cache = TieredCache.create(1000, 1000, tmp_path)
    stored = Stored(b"pixels")
    assert cache.get(KEY, "v1", stored.fetch, stored.decode) == ("pixels", "store")
    assert cache.get(KEY, "v1", stored.fetch, stored.decode) == ("pixels", "memory")
    assert stored.fetches == 1
    cache.l1.clear()
    assert cache.get(KEY, "v1", stored.fetch, stored.decode) == ("pixels", "disk")
    assert stored.fetches == 1
    stats = cache.stats()
    assert (stats["l1_hits_total"], stats["l1_misses_total"]) == (1, 2)
    assert (stats["l2_hits_total"], stats["l2_misses_total"]) == (1, 1)
    assert stats["store_loads_total"] == 1


def test_a_new_version_is_loaded_again(tmp_path: Path) -> None:
    cache = TieredCache.create(1000, 1000, tmp_path)
    stored = Stored(b"old")
    assert get(cache, stored, "v1") == "old"
    stored.data = b"new"
    assert get(cache, stored, "v2") == "new"
    assert get(cache, stored, "v2") == "new"
    assert stored.fetches == 2


def test_corrupt_bytes_are_not_cached(tmp_path: Path) -> None:
    cache = TieredCache.create(1000, 1000, tmp_path)
    stored = Stored(b"bad bytes")
    for _ in range(2):
        with pytest.raises(CorruptArtifact, match="human_img"):
            get(cache, stored)
    assert stored.fetches == 2
    assert cache.l1.lru_order() == [] and cache.l2 is not None and cache.l2.lru_order() == []
    stored.data = b"fixed"
    assert get(cache, stored) == "fixed"


def test_a_damaged_l2_file_is_dropped_and_fetched_again(tmp_path: Path) -> None:
    cache = TieredCache.create(1000, 1000, tmp_path)
    stored = Stored(b"good")
    get(cache, stored)
    cache.l1.clear()
    next(p for p in tmp_path.rglob("*") if p.is_file()).write_bytes(b"bad on disk")
    assert cache.get(KEY, "v1", stored.fetch, stored.decode) == ("good", "store")
    assert stored.fetches == 2


def test_without_l2(tmp_path: Path) -> None:
    cache = TieredCache.create(1000, 0, tmp_path / "unused")
    assert cache.l2 is None
    assert get(cache, Stored(b"x")) == "x"
    assert "l2_hits_total" not in cache.stats()


def test_slowest_source() -> None:
    everything: list[Source] = ["memory", "store", "disk"]
    assert slowest(everything) == "store"
    assert slowest(["disk", "memory"]) == "disk"
    assert slowest([]) == "memory"
