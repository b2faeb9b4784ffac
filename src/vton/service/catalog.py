"""A user's person and garments over HTTP: registration, reading, deletion, and loading them into
the caches ahead of try-ons. Every method may block on the store: call them from a thread."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence

from vton.errors import NotRegistered
from vton.preprocess import (
    ArtifactLoader,
    GarmentManifest,
    PersonManifest,
    delete_garment,
    delete_person,
    register_garment,
    register_person,
)
from vton.preprocess.body.analyze import PersonAnalyzer
from vton.preprocess.budget import DecodeBudget
from vton.preprocess.fit import FitMode
from vton.preprocess.garment import GarmentTextEncoder
from vton.store import keys
from vton.store.ids import Category, check_id

MAX_LISTED = 1000
"""Garments a listing returns at most."""


def results_folder(user_id: str) -> str:
    """The store folder of the user's try-on results (the key layout's, by its own function)."""
    return keys.result(user_id, "0" * 16).rpartition("/")[0] + "/"


class Catalog:
    def __init__(
        self,
        loader: ArtifactLoader,
        encoder: GarmentTextEncoder,
        analyzers: Sequence[PersonAnalyzer] = (),
        *,
        uploads: DecodeBudget,
    ) -> None:
        """`analyzers`: person preprocessing, one per device (none: masks and pose must be
        uploaded); `uploads`: the budget every uploaded image is decoded and fitted under."""
        self.loader = loader
        self.store = loader.store
        self.encoder = encoder
        self.analyzers = list(analyzers)
        self._next_analyzer = itertools.cycle(self.analyzers)
        self.uploads = uploads

    # -- person ------------------------------------------------------------------------------

    def register_person(
        self,
        user_id: str,
        photo: bytes,
        masks: Mapping[str, bytes] | None = None,
        pose: bytes | None = None,
        framing: FitMode = "letterbox",
    ) -> PersonManifest:
        """Stores the user's person (photo, a mask per category, DensePose image), replacing any
        earlier one; the images are PNG/JPEG/WebP bytes. Masks and pose not given are computed
        from the photo."""
        uploads = {"image": photo, **{f"masks.{c}": m for c, m in (masks or {}).items()}}
        if pose is not None:
            uploads["pose"] = pose
        with self.uploads.decoded(uploads) as images:
            manifest = register_person(
                self.store,
                user_id,
                images.pop("image"),
                {c: images.pop(f"masks.{c}") for c in masks or {}},
                images.pop("pose", None),
                analyzer=self._analyzer(),
                framing=framing,
            )
        self.loader.forget_person(user_id)
        return manifest

    def _analyzer(self) -> PersonAnalyzer | None:
        """An idle device's analyzer, else the next in turn (it runs one person at a time)."""
        idle = [a for a in self.analyzers if not a.busy]
        return idle[0] if idle else next(self._next_analyzer, None)

    def person_image(self, user_id: str, category: str, name: str) -> bytes:
        """One stored image of the person (PNG), as the try-on uses it."""
        manifest = self.person(user_id)
        registered = Category.parse(category)
        if registered not in manifest.categories:
            raise NotRegistered(f"person of user {user_id!r} is not registered for {category}")
        return self.store.get(keys.person_image(user_id, registered, name))

    def person(self, user_id: str) -> PersonManifest:
        return self.loader.person_manifest(user_id)

    def delete_person(self, user_id: str) -> None:
        """Removes the person and every stored try-on result of the user (images of them)."""
        check_id("user_id", user_id)
        existed = delete_person(self.store, user_id)
        self.loader.forget_person(user_id)
        self.store.delete_prefix(results_folder(user_id))
        if not existed:
            raise NotRegistered(f"person of user {user_id!r} is not registered")

    # -- garments ----------------------------------------------------------------------------

    def register_garment(
        self, user_id: str, clothing_id: str, photo: bytes, description: str, category: str
    ) -> GarmentManifest:
        with self.uploads.decoded({"image": photo}) as images:
            manifest = register_garment(
                self.store,
                self.encoder,
                user_id,
                clothing_id,
                images.pop("image"),
                description,
                category,
            )
        self.loader.forget_garment(user_id, clothing_id)
        return manifest

    def garment(self, user_id: str, clothing_id: str) -> GarmentManifest:
        return self.loader.garment_manifest(user_id, clothing_id)

    def garments(self, user_id: str) -> list[GarmentManifest]:
        """The user's garments by clothing id (at most MAX_LISTED)."""
        folder = keys.garment_manifest(user_id, "x").removesuffix("x.json")  # the layout's folder
        names = [k.removeprefix(folder) for k in self.store.list(folder)]
        ids = [n.removesuffix(".json") for n in names if n.endswith(".json") and "/" not in n]
        manifests = []
        for clothing_id in ids[:MAX_LISTED]:
            try:
                manifests.append(self.loader.garment_manifest(user_id, clothing_id))
            except NotRegistered:  # deleted since the listing
                continue
        return manifests

    def garment_image(self, user_id: str, clothing_id: str) -> bytes:
        """The garment's stored PNG (fitted to the working frame)."""
        self.garment(user_id, clothing_id)
        return self.store.get(keys.garment_image(user_id, clothing_id))

    def delete_garment(self, user_id: str, clothing_id: str) -> None:
        check_id("clothing_id", clothing_id)
        existed = delete_garment(self.store, user_id, clothing_id)
        self.loader.forget_garment(user_id, clothing_id)
        if not existed:
            raise NotRegistered(f"garment {clothing_id!r} of user {user_id!r} is not registered")

    # -- caches ------------------------------------------------------------------------------

    def warm_up(self, user_id: str, clothing_ids: list[str], category: Category | None) -> float:
        """Loads the person and the garments into the caches; returns the milliseconds."""
        started = time.perf_counter()
        self.loader.gather(user_id, clothing_ids, category)
        return (time.perf_counter() - started) * 1000.0
