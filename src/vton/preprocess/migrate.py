"""Migration of a store written by the system this replaces: same key layout, but no manifests,
no versions, and text embeddings pickled in `text/{clothing_id}.pkl`.

Pickles are read only through `torch.load(weights_only=True)`, which rebuilds tensors and plain
containers and refuses every other object; anything it refuses is reported, never executed.
Items already migrated (they have a manifest) are skipped, so the migration can be re-run.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import torch

from vton.engine.types import TextEmbeddings
from vton.errors import CorruptArtifact, StoreUnavailable, VtonError
from vton.preprocess.garment import decode_text, encode_text
from vton.preprocess.manifest import GarmentManifest, PersonManifest, new_version
from vton.preprocess.person import IMAGE_MODES
from vton.store import keys
from vton.store.base import Store, put_all
from vton.store.codecs import decode_json, decode_png, encode_png
from vton.store.ids import Category, check_id

_UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*([^\n.]+)")
_GARMENT_KEY = re.compile(r"users/[^/]+/vton-cache/(?:garments/(.+)\.json|text/(.+)\.pkl)")


@dataclass
class MigrationReport:
    persons: list[str] = field(default_factory=list)  # user ids
    garments: list[str] = field(default_factory=list)  # "user_id/clothing_id"
    skipped: int = 0  # already migrated
    refused: list[str] = field(default_factory=list)  # "what: why"

    def summary(self) -> str:
        return (
            f"migrated {len(self.persons)} persons and {len(self.garments)} garments, "
            f"{self.skipped} already migrated, {len(self.refused)} refused"
        )


def load_legacy_text(key: str, data: bytes) -> TextEmbeddings:
    """Text embeddings from a legacy `.pkl` (a dict of the five tensors, or the five in order),
    read with the restricted loader only."""
    try:
        with warnings.catch_warnings():  # it warns about pickle protocols it then refuses anyway
            warnings.simplefilter("ignore")
            loaded = torch.load(BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # whatever the restricted loader refuses or cannot parse
        raise CorruptArtifact(
            f"{key}: refused: torch.load(weights_only=True) cannot read it ({_reason(e)}); "
            "re-register this garment"
        ) from e
    names = TextEmbeddings.names()
    if isinstance(loaded, list | tuple) and len(loaded) == len(names):
        loaded = dict(zip(names, loaded, strict=True))
    if not isinstance(loaded, dict) or not all(
        isinstance(t, torch.Tensor) for t in loaded.values()
    ):
        raise CorruptArtifact(f"{key}: refused: expected the five text tensors, got {type(loaded)}")
    expected_ndim = {n: 1 if n.startswith(("pooled", "negative_pooled")) else 2 for n in names}
    squeezed = {  # the legacy system kept a batch axis of 1
        name: t[0] if t.shape[:1] == (1,) and t.ndim == expected_ndim.get(name, -1) + 1 else t
        for name, t in loaded.items()
    }
    try:
        return TextEmbeddings.from_dict(squeezed)
    except ValueError as e:
        raise CorruptArtifact(f"{key}: refused: {e}") from e


def _reason(error: Exception) -> str:
    """The useful part of torch's refusal (its message goes on to suggest weights_only=False)."""
    match = _UNPICKLER_REASON.search(str(error))
    return match.group(1).strip() if match else type(error).__name__


def migrate_store(
    store: Store, *, dry_run: bool = False, delete_pickles: bool = False
) -> MigrationReport:
    """Adds manifests and versions to every legacy person and garment, converting pickled text
    to safetensors. `dry_run` reads and checks everything and writes nothing."""
    migration = _Migration(store, dry_run)
    for user_id in migration.user_ids():
        user_keys = set(store.list(keys.user_root(user_id)))
        migration.guarded(f"person of {user_id}", migration.person, user_id, user_keys)
        for clothing_id in _clothing_ids(user_keys):
            what = f"garment {user_id}/{clothing_id}"
            done = migration.guarded(what, migration.garment, user_id, clothing_id, user_keys)
            if done and delete_pickles and not dry_run:
                store.delete(keys.legacy_text(user_id, clothing_id))
    return migration.report


def _clothing_ids(user_keys: set[str]) -> list[str]:
    ids = set()
    for key in user_keys:
        match = _GARMENT_KEY.fullmatch(key)
        if match:
            ids.add(match.group(1) or match.group(2))
    return sorted(ids)


class _Migration:
    def __init__(self, store: Store, dry_run: bool) -> None:
        self.store = store
        self.dry_run = dry_run
        self.report = MigrationReport()

    def write(self, objects: dict[str, bytes]) -> None:
        if not self.dry_run:
            put_all(self.store, objects)

    def guarded(self, what: str, step: Callable[..., bool], *args: Any) -> bool:
        """Runs one item's step; a refusal is reported, an unreachable store stops everything."""
        try:
            return step(*args)
        except StoreUnavailable:
            raise
        except VtonError as e:
            self.report.refused.append(f"{what}: {e}")
            return False

    def user_ids(self) -> Iterable[str]:
        found = {key.split("/")[1] for key in self.store.list("users/") if key.count("/") >= 2}
        for user_id in sorted(found):
            try:
                yield check_id("user_id", user_id)
            except VtonError as e:
                self.report.refused.append(f"users/{user_id}/: {e}")

    def person(self, user_id: str, user_keys: set[str]) -> bool:
        """Migrates the person; True if it did."""
        if keys.person_manifest(user_id) in user_keys:
            self.report.skipped += 1
            return False
        categories = []
        for category in Category:
            present = [
                n for n in IMAGE_MODES if keys.person_image(user_id, category, n) in user_keys
            ]
            if len(present) == len(IMAGE_MODES):
                categories.append(category)
            elif present:
                absent = sorted(set(IMAGE_MODES) - set(present))
                self.report.refused.append(
                    f"{keys.person_folder(user_id, category)}: incomplete, no {', '.join(absent)}"
                )
        if not categories:
            return False
        version = new_version()
        objects = {}
        for category in categories:
            for name, mode in IMAGE_MODES.items():
                key = keys.person_image(user_id, category, name)
                image, _ = decode_png(key, self.store.get(key), mode)
                objects[key] = encode_png(image, version)
        self.write(objects)
        manifest = PersonManifest(version=version, categories=tuple(categories))
        self.write({keys.person_manifest(user_id): manifest.encode()})
        self.report.persons.append(user_id)
        return True

    def garment(self, user_id: str, clothing_id: str, user_keys: set[str]) -> bool:
        """Migrates one garment; True if it did."""
        check_id("clothing_id", clothing_id)
        meta_key = keys.garment_manifest(user_id, clothing_id)
        if meta_key not in user_keys:
            raise CorruptArtifact(f"{meta_key}: missing (legacy text without garment metadata)")
        legacy = decode_json(meta_key, self.store.get(meta_key))
        if "version" in legacy:
            self.report.skipped += 1
            return False
        description = legacy.get("description")
        if not isinstance(description, str) or not description:
            raise CorruptArtifact(f"{meta_key}: no description")
        category = Category.parse(legacy.get("category"))
        image_key = keys.garment_image(user_id, clothing_id)
        image, _ = decode_png(image_key, self.store.get(image_key), "RGB")
        text_key = keys.text(user_id, clothing_id)
        text = self.text(user_id, clothing_id, user_keys)

        version = new_version()
        self.write({image_key: encode_png(image, version), text_key: encode_text(text, version)})
        manifest = GarmentManifest(
            version=version, clothing_id=clothing_id, category=category, description=description
        )
        self.write({meta_key: manifest.encode()})
        self.report.garments.append(f"{user_id}/{clothing_id}")
        return True

    def text(self, user_id: str, clothing_id: str, user_keys: set[str]) -> TextEmbeddings:
        """The garment's text: safetensors if there already is one, else the legacy pickle."""
        text_key, pkl_key = keys.text(user_id, clothing_id), keys.legacy_text(user_id, clothing_id)
        if text_key in user_keys:
            return decode_text(text_key, self.store.get(text_key))[0]
        if pkl_key in user_keys:
            return load_legacy_text(pkl_key, self.store.get(pkl_key))
        raise CorruptArtifact(f"{text_key}: no text embeddings (re-register this garment)")
