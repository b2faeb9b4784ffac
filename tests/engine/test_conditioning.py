"""The device-side conditioning cache: keyed samples only, within its bound in bytes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tests.engine.test_pipeline import OPTIONS, sample
from vton.engine.checkpoint import load_model
from vton.engine.conditioning import ConditioningEncoder, tensor_bytes


@dataclass
class Item:
    tensor: torch.Tensor


def test_tensor_bytes_counts_nested_dataclasses():
    @dataclass
    class Outer:
        inner: Item
        other: torch.Tensor

    assert tensor_bytes(Outer(Item(torch.zeros(10)), torch.zeros(5, dtype=torch.float16))) == 50


def test_the_cache_holds_keyed_conditioning_up_to_its_bound(tiny_model_dir):
    model = load_model(tiny_model_dir)
    keyed = [sample(0, 0, person_key="u1/upper@v1", garment_key="u1/g0@v1")]
    cached = ConditioningEncoder(model, cache_bytes=1 << 30)
    cached.assemble(keyed, OPTIONS, guidance=True)
    assert len(cached.cache) == 2  # one person, one garment
    entries = [cached.cache.peek(key) for key in cached.cache.lru_order()]
    assert cached.cache.bytes == sum(tensor_bytes(entry) for entry in entries) > 0
    unkeyed = ConditioningEncoder(model, cache_bytes=1 << 30)
    unkeyed.assemble([sample(0, 0)], OPTIONS, guidance=True)
    too_small = ConditioningEncoder(model, cache_bytes=1024)
    too_small.assemble(keyed, OPTIONS, guidance=True)
    assert len(unkeyed.cache) == len(too_small.cache) == 0
