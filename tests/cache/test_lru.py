"""The one in-memory LRU: size function, versions, make_room, invalidate, and None as the miss."""

from __future__ import annotations

import pytest

from vton.cache import Lru


def test_size_function_bounds_bytes_and_evicts_oldest_first() -> None:
    lru: Lru[str, bytes] = Lru(10, size=len)
    lru.put("a", b"aaaa")
    lru.put("b", b"bbbb")
    assert lru.get("a") == b"aaaa"  # a is now the most recent
    lru.put("c", b"cccc")
    assert lru.lru_order() == ["a", "c"]
    assert (lru.bytes, lru.evictions) == (8, 1)
    assert lru.put("big", b"x" * 11) is False
    assert "big" not in lru.lru_order()


def test_version_mismatch_is_a_miss_and_counted() -> None:
    lru: Lru[str, str] = Lru(100, size=len)
    lru.put("k", "value", version="v1")
    assert lru.get("k", "v2") is None
    assert lru.get("k", "v1") == "value"
    assert lru.peek("k", "v2") is None
    assert (lru.hits, lru.misses) == (1, 1)


def test_make_room_invalidate_discard_and_clear() -> None:
    lru: Lru[tuple[str, int], bytes] = Lru(12, size=len)
    for i in range(3):
        lru.put(("u", i), b"1234")
    lru.make_room(4)
    assert lru.lru_order() == [("u", 1), ("u", 2)]
    assert lru.invalidate(lambda key: key[1] == 2) == 1
    lru.discard(("u", 1))
    assert (len(lru), lru.bytes) == (0, 0)
    lru.put(("v", 0), b"12")
    lru.clear()
    assert lru.stats()["entries"] == 0


def test_none_and_unsized_values_are_refused() -> None:
    with pytest.raises(ValueError, match="None"):
        Lru(10, size=len).put("k", None)
    with pytest.raises(ValueError, match="nbytes"):
        Lru(10).put("k", b"x")
