"""L2 specifics: files on disk, restart, versions, invalidation by prefix."""

from __future__ import annotations

import os
from pathlib import Path

from vton.cache import DiskLRU

A = "users/u1/vton-cache/upper/human_img.png"
B = "users/u1/vton-cache/upper/mask.png"
C = "users/u2/vton-cache/garments/c1_img.png"


def test_a_new_version_replaces_the_old_file(tmp_path: Path) -> None:
    cache = DiskLRU(tmp_path, 1000)
    cache.put(A, "v1", b"old")
    cache.put(A, "v2", b"new!")
    assert cache.get(A, "v1") is None
    assert cache.get(A, "v2") == b"new!"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["human_img.png~v2"]
    assert cache.bytes == 4


def test_restart_rebuilds_the_index_in_recency_order(tmp_path: Path) -> None:
    cache = DiskLRU(tmp_path, 1000)
    for i, key in enumerate([A, B, C]):
        cache.put(key, "v1", b"x" * 10)
        os.utime(cache._path(key, "v1"), ns=(i * 10**9, i * 10**9))
    (tmp_path / "users/u1/vton-cache/upper/.tmp-left-by-a-crash").write_bytes(b"junk")
    reopened = DiskLRU(tmp_path, 1000)
    assert reopened.lru_order() == [A, B, C]
    assert reopened.bytes == 30
    assert reopened.get(A, "v1") == b"x" * 10
    assert not (tmp_path / "users/u1/vton-cache/upper/.tmp-left-by-a-crash").exists()
    assert DiskLRU(tmp_path, 15).lru_order() == [A]  # a smaller bound keeps the last read only


def test_invalidate_prefix_removes_files_and_folders(tmp_path: Path) -> None:
    cache = DiskLRU(tmp_path, 1000)
    for key in (A, B, C):
        cache.put(key, "v1", b"data")
    assert cache.invalidate("users/u1/") == 2
    assert cache.lru_order() == [C]
    assert not (tmp_path / "users/u1").exists()
    assert cache.get(A, "v1") is None


def test_discard_and_oversized_objects(tmp_path: Path) -> None:
    cache = DiskLRU(tmp_path, 5)
    cache.put(A, "v1", b"123456")  # larger than the whole bound: not kept
    assert cache.lru_order() == []
    cache.put(B, "v1", b"123")
    cache.discard(B)
    assert cache.get(B, "v1") is None and cache.bytes == 0
