"""Fixtures for registration and loading: a fake text encoder, a loader, person inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.helpers import random_image
from vton.cache import TieredCache
from vton.engine.types import TextEmbeddings
from vton.errors import StoreUnavailable
from vton.preprocess import ArtifactLoader
from vton.store import Store


class FakeTextEncoder:
    """Stands in for vton.engine.text.PromptEncoder: small embeddings derived from the text."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def encode_garment(self, description: str) -> TextEmbeddings:
        self.calls.append(description)
        seed = int.from_bytes(hashlib.sha256(description.encode()).digest()[:4], "little")
        g = torch.Generator().manual_seed(seed)
        return TextEmbeddings(
            prompt_embeds=torch.randn(77, 16, generator=g),
            negative_prompt_embeds=torch.randn(77, 16, generator=g),
            pooled_prompt_embeds=torch.randn(8, generator=g),
            negative_pooled_prompt_embeds=torch.randn(8, generator=g),
            prompt_embeds_c=torch.randn(77, 16, generator=g),
        )


class RecordingStore(Store):
    """Passes every call to `inner` and records (method, key)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: list[tuple[str, str]] = []

    def get(self, key: str) -> bytes:
        self.calls.append(("get", key))
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.calls.append(("put", key))
        self.inner.put(key, data)

    def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator[str]:
        self.calls.append(("list", prefix))
        return self.inner.list(prefix)


class OutageStore(Store):
    """`inner`, or StoreUnavailable from every call while `down` (a store that does not answer,
    as GuardedStore reports one)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable(f"{self.url}: no answer (outage injected by the test)")

    def get(self, key: str) -> bytes:
        self._check()
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self._check()
        self.inner.put(key, data)

    def delete(self, key: str) -> None:
        self._check()
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator[str]:
        self._check()
        return self.inner.list(prefix)


def person_inputs(
    seed: int, size: tuple[int, int] = (300, 450)
) -> tuple[Image.Image, dict[str, Image.Image], Image.Image]:
    """A photo, an upper-body mask (the top half) and a DensePose image, all of `size`."""
    w, h = size
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, w, h // 2))
    return random_image(seed, w, h), {"upper_body": mask}, random_image(seed + 1, w, h)


@pytest.fixture
def encoder() -> FakeTextEncoder:
    return FakeTextEncoder()


@pytest.fixture
def loader(artifact_store: Store, tmp_path: Path) -> Iterator[ArtifactLoader]:
    cache = TieredCache.create(256 << 20, 256 << 20, tmp_path / "cache")
    loader = ArtifactLoader(artifact_store, cache, workers=8)
    yield loader
    loader.close()
