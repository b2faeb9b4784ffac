"""Artifact formats: PNG for images, safetensors for tensors, JSON for metadata. Never pickle.

Encoders stamp the artifact's version into the object (a PNG text chunk, safetensors metadata),
so a reader can check that what it downloaded belongs to the manifest it read. Decoders raise
CorruptArtifact naming the key.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from io import BytesIO
from typing import Any

import torch
from PIL import Image, PngImagePlugin
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from vton.errors import CorruptArtifact
from vton.store import png

VERSION_FIELD = "vton-version"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own header limit


def encode_png(image: Image.Image, version: str | None = None) -> bytes:
    """PNG by the parallel encoder (vton.store.png: a 768 x 1024 photo in ~15 ms on a GPU host's
    cores, where Pillow's default level took ~190 ms here), the version in a text chunk."""
    return png.encode_png(image, None if version is None else {VERSION_FIELD: version})


def encode_pngs(images: Mapping[str, Image.Image], version: str | None = None) -> dict[str, bytes]:
    """encode_png of every image, by key; an image object given under several keys is encoded
    once."""
    distinct = {id(image): image for image in images.values()}
    encoded = {key: encode_png(image, version) for key, image in distinct.items()}
    return {key: encoded[id(image)] for key, image in images.items()}


def decode_png(key: str, data: bytes, mode: str) -> tuple[Image.Image, str | None]:
    """The image, fully loaded and converted to `mode`, and the version it carries (or None)."""
    try:
        image = Image.open(BytesIO(data), formats=["PNG"])
        image.load()  # decodes now, so a cached image is never decoded lazily by two threads
        assert isinstance(image, PngImagePlugin.PngImageFile)  # formats=["PNG"]
        version = image.text.get(VERSION_FIELD)
        return (image if image.mode == mode else image.convert(mode)), version
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise CorruptArtifact(f"{key}: not a readable PNG ({e})") from e


def encode_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    return save_safetensors(cpu, metadata=metadata)


def decode_tensors(key: str, data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (on CPU) and the file's string metadata."""
    try:
        (size,) = struct.unpack("<Q", data[:8])
        if size > min(_MAX_HEADER, len(data) - 8):
            raise ValueError(f"header length {size} exceeds the file")
        header = json.loads(data[8 : 8 + size])
        metadata = header.get("__metadata__") or {}
        tensors = load_safetensors(data)
    except (struct.error, ValueError, AttributeError, SafetensorError) as e:
        raise CorruptArtifact(f"{key}: not a readable safetensors file ({e})") from e
    return tensors, metadata


def encode_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def decode_json(key: str, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both are
        raise CorruptArtifact(f"{key}: not readable JSON ({e})") from e
    if not isinstance(value, dict):
        raise CorruptArtifact(f"{key}: JSON is not an object")
    return value
