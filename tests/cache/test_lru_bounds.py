"""L1 and L2 under random workloads: the byte bound always holds and the order is LRU's.

Both are checked against the same reference: a list from least to most recently used.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vton.cache import DiskLRU, Lru

KEYS = [f"users/u{i}/vton-cache/upper/human_img.png" for i in range(6)]
VERSIONS = ["v1", "v2"]

operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "get"]),
        st.sampled_from(KEYS),
        st.sampled_from(VERSIONS),
        st.integers(min_value=0, max_value=120),
    ),
    max_size=60,
)


class Reference:
    """The specification: one entry per key; a put for a key replaces it; entries that do not
    fit are dropped least recently used first; an object larger than the bound is not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: list[tuple[str, str, int]] = []  # least recently used first

    def put(self, key: str, version: str, size: int) -> None:
        self.entries = [e for e in self.entries if e[0] != key]
        if size <= self.max_bytes:
            self.entries.append((key, version, size))
        while sum(e[2] for e in self.entries) > self.max_bytes:
            self.entries.pop(0)

    def get(self, key: str, version: str) -> bool:
        for entry in self.entries:
            if entry[:2] == (key, version):
                self.entries.remove(entry)
                self.entries.append(entry)
                return True
        return False


def run(cache: Any, put: Callable[[str, str, int], None], ops: list, max_bytes: int) -> None:
    reference = Reference(max_bytes)
    for op, key, version, size in ops:
        if op == "put":
            put(key, version, size)
            reference.put(key, version, size)
        else:
            found = cache.get(key, version)
            hit = found is not None
            assert hit == reference.get(key, version)
            if hit:
                assert len(found) == next(e[2] for e in reference.entries if e[0] == key)
        assert cache.bytes <= max_bytes
        assert cache.bytes == sum(e[2] for e in reference.entries)
        assert cache.lru_order() == [e[0] for e in reference.entries]


@given(ops=operations, max_bytes=st.integers(min_value=0, max_value=300))
def test_memory_lru_bound_and_order(ops: list, max_bytes: int) -> None:
    cache = Lru(max_bytes)
    run(cache, lambda k, v, n: cache.put(k, b"x" * n, v, n), ops, max_bytes)


@settings(max_examples=40, deadline=None)
@given(ops=operations, max_bytes=st.integers(min_value=0, max_value=300))
def test_disk_lru_bound_and_order(ops: list, max_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        cache = DiskLRU(Path(folder), max_bytes)
        run(cache, lambda k, v, n: cache.put(k, v, b"x" * n), ops, max_bytes)
        on_disk = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
        assert on_disk == cache.bytes
