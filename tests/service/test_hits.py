"""Where a lookup found its artifact: memory, disk or the store."""

from __future__ import annotations

from pathlib import Path

from vton.service.hits import ObservedCache


def decode(data: bytes) -> tuple[bytes, int]:
    return data, len(data)


def test_sources_per_key_and_version(tmp_path: Path) -> None:
    cache = ObservedCache.create(1 << 20, 1 << 20, tmp_path)
    fetches: list[str] = []

    def fetch() -> bytes:
        fetches.append("a")
        return b"payload"

    cache.get("a", "v1", fetch, decode)
    assert cache.source([("a", "v1")]) == "store"
    cache.get("a", "v1", fetch, decode)
    assert cache.source([("a", "v1")]) == "memory"
    cache.l1.discard("a")
    cache.get("a", "v1", fetch, decode)
    assert cache.source([("a", "v1")]) == "disk"
    assert fetches == ["a"]
    assert cache.source([("a", "v1"), ("b", "v1")]) == "store"  # never looked up: the slowest
