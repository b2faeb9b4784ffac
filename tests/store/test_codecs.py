"""PNG / safetensors / JSON: round trips with the version stamp, and corrupt bytes named by key."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import random_image
from vton.errors import CorruptArtifact
from vton.store import codecs


def test_png_round_trip_carries_the_version() -> None:
    image = random_image(0)
    decoded, version = codecs.decode_png("k", codecs.encode_png(image, "v1"), "RGB")
    assert version == "v1"
    assert decoded.tobytes() == image.tobytes()
    assert codecs.decode_png("k", codecs.encode_png(image), "L")[0].mode == "L"


def test_pngs_are_encoded_by_key_and_each_image_once(monkeypatch: pytest.MonkeyPatch) -> None:
    shared, other = random_image(3), random_image(4, mode="L")
    calls = []
    encode = codecs.encode_png
    monkeypatch.setattr(codecs, "encode_png", lambda i, v: calls.append(i) or encode(i, v))
    encoded = codecs.encode_pngs({"a": shared, "b": other, "c": shared}, "v7")
    assert sorted(encoded) == ["a", "b", "c"] and len(calls) == 2
    assert encoded["a"] == encoded["c"]
    for key, image in (("a", shared), ("b", other)):
        decoded, version = codecs.decode_png(key, encoded[key], image.mode)
        assert version == "v7" and decoded.tobytes() == image.tobytes()


def test_safetensors_round_trip_carries_metadata() -> None:
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    decoded, metadata = codecs.decode_tensors("k", codecs.encode_tensors(tensors, {"x": "y"}))
    assert metadata == {"x": "y"}
    assert all(torch.equal(decoded[n], tensors[n]) for n in tensors)


def png_bytes() -> bytes:
    return codecs.encode_png(random_image(1), "v1")


def tensor_bytes() -> bytes:
    return codecs.encode_tensors({"a": torch.randn(64)}, {})


@pytest.mark.parametrize(
    ("decode", "data"),
    [
        (lambda d: codecs.decode_png("users/u1/k.png", d, "RGB"), png_bytes()[:500]),
        (lambda d: codecs.decode_png("users/u1/k.png", d, "RGB"), b"GIF89a not a png"),
        (lambda d: codecs.decode_png("users/u1/k.png", d, "RGB"), tensor_bytes()),
        (lambda d: codecs.decode_tensors("users/u1/k.png", d), tensor_bytes()[:-7]),
        (lambda d: codecs.decode_tensors("users/u1/k.png", d), b"\xff" * 64),
        (lambda d: codecs.decode_tensors("users/u1/k.png", d), b""),
        (lambda d: codecs.decode_json("users/u1/k.png", d), b"{not json"),
        (lambda d: codecs.decode_json("users/u1/k.png", d), b"[1, 2]"),
        (lambda d: codecs.decode_json("users/u1/k.png", d), b"\xff\xfe"),
    ],
)
def test_corrupt_bytes_name_the_key(decode, data: bytes) -> None:
    with pytest.raises(CorruptArtifact, match=r"users/u1/k\.png"):
        decode(data)
