"""Garment registration: a photo fitted to the working frame, the text embeddings of its
description, and its manifest (category, description, version)."""

from __future__ import annotations

from typing import Protocol

from PIL import Image

from vton.engine.types import TextEmbeddings
from vton.errors import CorruptArtifact
from vton.preprocess.fit import fit_photo
from vton.preprocess.inputs import check_description, check_min_side
from vton.preprocess.manifest import GarmentManifest, new_version
from vton.store import keys
from vton.store.base import Store, put_all
from vton.store.codecs import VERSION_FIELD, decode_tensors, encode_png, encode_tensors
from vton.store.ids import Category, check_id


class GarmentTextEncoder(Protocol):
    """What registration needs from the engine (vton.engine.text.PromptEncoder has it)."""

    def encode_garment(self, description: str) -> TextEmbeddings: ...


def encode_text(text: TextEmbeddings, version: str) -> bytes:
    return encode_tensors(text.as_dict(), {VERSION_FIELD: version})


def decode_text(key: str, data: bytes) -> tuple[TextEmbeddings, str | None]:
    """Stored text embeddings and the version they carry (None if they carry none)."""
    tensors, metadata = decode_tensors(key, data)
    try:
        return TextEmbeddings.from_dict(tensors), metadata.get(VERSION_FIELD)
    except ValueError as e:
        raise CorruptArtifact(f"{key}: {e}") from e


def register_garment(
    store: Store,
    encoder: GarmentTextEncoder,
    user_id: str,
    clothing_id: str,
    photo: Image.Image,
    description: str,
    category: Category | str,
) -> GarmentManifest:
    """Stores garment `clothing_id` of `user_id`, replacing any earlier one."""
    check_id("user_id", user_id)
    check_id("clothing_id", clothing_id)
    description = check_description(description)
    category = Category.parse(category)
    check_min_side(photo, "image")
    image, fit = fit_photo(photo)
    text = encoder.encode_garment(description)
    version = new_version()
    put_all(
        store,
        {
            keys.garment_image(user_id, clothing_id): encode_png(image, version),
            keys.text(user_id, clothing_id): encode_text(text, version),
        },
    )
    manifest = GarmentManifest(
        version=version,
        clothing_id=clothing_id,
        category=category,
        description=description,
        fit=fit,
    )
    store.put(keys.garment_manifest(user_id, clothing_id), manifest.encode())  # last
    return manifest


def delete_garment(store: Store, user_id: str, clothing_id: str) -> bool:
    """Removes garment `clothing_id` of `user_id`; False if there was none."""
    manifest_key = keys.garment_manifest(user_id, clothing_id)
    existed = store.exists(manifest_key)
    store.delete(manifest_key)  # first: from now on the garment is not registered
    store.delete(keys.garment_image(user_id, clothing_id))
    store.delete(keys.text(user_id, clothing_id))
    return existed
