"""The device-side conditioning LRU and the garment de-duplication layout."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tests.engine.test_pipeline import sample
from vton.engine.conditioning import DeviceLru, distinct_garments, tensor_bytes


@dataclass
class Item:
    tensor: torch.Tensor


def test_lru_is_bounded_in_bytes_and_evicts_least_recently_used():
    lru = DeviceLru(max_bytes=3 * 400)
    for key in "abc":
        lru.put(key, Item(torch.zeros(100)))  # 400 bytes each
    assert lru.get("a") is not None  # a is now the most recent
    lru.put("d", Item(torch.zeros(100)))
    assert lru.get("b") is None and lru.get("a") is not None
    assert lru.bytes == 1200 and len(lru) == 3
    lru.put("huge", Item(torch.zeros(1000)))  # larger than the bound: not kept, nothing evicted
    assert lru.get("huge") is None and len(lru) == 3


def test_tensor_bytes_counts_nested_dataclasses():
    @dataclass
    class Outer:
        inner: Item
        other: torch.Tensor

    assert tensor_bytes(Outer(Item(torch.zeros(10)), torch.zeros(5, dtype=torch.float16))) == 50


def test_distinct_garments_runs_garment_net_once_when_every_sample_shares_the_garment():
    shared = [sample(p, 0, garment_key="a") for p in range(3)]
    assert distinct_garments(shared) == ([0], [0, 0, 0])


def test_distinct_garments_keeps_the_plain_layout_otherwise():
    partly_shared = [
        sample(0, 0, garment_key="a"),
        sample(1, 1),
        sample(2, 0, garment_key="a"),
    ]
    assert distinct_garments(partly_shared) == ([0, 1, 2], None)
    unkeyed = [sample(0, 0), sample(1, 0)]  # same image, but nothing says it is the same garment
    assert distinct_garments(unkeyed) == ([0, 1], None)
    assert distinct_garments(unkeyed[:1]) == ([0], None)
