"""Loading what a try-on needs: manifests first (they name the versions), then every artifact
in parallel on a bounded pool, each through the caches (L1, L2, one load per key in flight).
Each person and garment says where its artifacts came from: the slowest source among them.
When the store does not answer, a manifest the store gave at most `stale_if_error_s` ago stands in
(cache/stale.py), so a try-on whose artifacts are cached is still served; it says how old.

    gather(user_id, [c1, c2])  ->  [TryOnInputs(person for c1's category, garment c1), ...]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from PIL import Image

from vton.cache import Found, Source, TieredCache, slowest
from vton.cache.stale import Read, StaleIfError
from vton.engine.types import TextEmbeddings
from vton.errors import CorruptArtifact, InvalidInput, NotRegistered, StoreUnavailable
from vton.preprocess.fit import Fit
from vton.preprocess.garment import decode_text
from vton.preprocess.manifest import GarmentManifest, PersonManifest
from vton.preprocess.person import IMAGE_MODES
from vton.store import keys
from vton.store.base import MissingObject, Store
from vton.store.codecs import decode_png
from vton.store.ids import Category, check_id

_STALE_RETRIES = (0.05, 0.1, 0.2, 0.4)  # seconds between attempts while a registration lands
M = TypeVar("M", PersonManifest, GarmentManifest)
TRYON_IMAGES = {name: mode for name, mode in IMAGE_MODES.items() if name != "mask_gray"}
"""The person images a try-on reads, and their modes (mask_gray is a preview for the API)."""


class StaleArtifact(CorruptArtifact):
    """An artifact whose version is not its manifest's: a registration is being written, or the
    store is inconsistent if it persists."""


@dataclass(frozen=True)
class PersonArtifacts:
    user_id: str
    category: Category
    version: str
    fit: Fit | None
    human_img: Image.Image
    mask: Image.Image
    pose: Image.Image
    photo: Image.Image | None
    """The original photo, for persons in the crop framing (results go back into it)."""
    source: Source
    """Where the slowest of these images came from (memory, disk, store)."""
    manifest_age_s: float | None = None
    """Set when the store did not answer and the remembered manifest was used: its age."""


@dataclass(frozen=True)
class GarmentArtifacts:
    user_id: str
    clothing_id: str
    version: str
    image: Image.Image
    text: TextEmbeddings
    source: Source
    """Where the slower of the image and the text came from."""
    manifest_age_s: float | None = None
    """Set when the store did not answer and the remembered manifest was used: its age."""


@dataclass(frozen=True)
class TryOnInputs:
    """One garment and the person artifacts of the category it is tried on in. Images are shared
    with the cache: read them, never modify them in place."""

    person: PersonArtifacts
    garment: GarmentArtifacts


def _check_version(key: str, found: str | None, expected: str) -> None:
    if found != expected:
        raise StaleArtifact(f"{key}: carries version {found}, its manifest says {expected}")


def decode_image(mode: str, key: str, version: str, data: bytes) -> tuple[Image.Image, int]:
    """A stored PNG as an image in `mode` and its decoded size, if it carries `version`."""
    image, found = decode_png(key, data, mode)
    _check_version(key, found, version)
    return image, image.width * image.height * len(image.getbands())


def decode_versioned_text(key: str, version: str, data: bytes) -> tuple[TextEmbeddings, int]:
    """Stored text embeddings and their size in bytes, if they carry `version`."""
    text, found = decode_text(key, data)
    _check_version(key, found, version)
    return text, text.nbytes()


class ArtifactLoader:
    """Loads artifacts through `cache`, `workers` objects at a time; a try-on's manifests may be
    up to `stale_if_error_s` old while the store does not answer (0: never). Thread-safe."""

    def __init__(
        self, store: Store, cache: TieredCache, workers: int = 16, stale_if_error_s: float = 0.0
    ) -> None:
        self.store = store
        self.cache = cache
        self.manifests: StaleIfError[Any] = StaleIfError(stale_if_error_s)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vton-load")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def stats(self) -> dict[str, int]:
        """The caches' stats, and the manifests that stood in for the store."""
        return self.cache.stats() | {"stale_manifests_served_total": self.manifests.served}

    def forget_person(self, user_id: str) -> None:
        """Frees the cached artifacts of a person (re-registered or deleted). Correctness does not
        depend on it: a new registration has a new version, which the caches never confuse."""
        for category in Category:
            self.cache.invalidate(keys.person_folder(user_id, category))
        self.cache.invalidate(keys.person_photo(user_id))
        self.manifests.forget(keys.person_manifest(user_id))  # never stands in for the new one

    def forget_garment(self, user_id: str, clothing_id: str) -> None:
        self.cache.invalidate(keys.garment_image(user_id, clothing_id))
        self.cache.invalidate(keys.text(user_id, clothing_id))
        self.manifests.forget(keys.garment_manifest(user_id, clothing_id))

    def person_manifest(self, user_id: str) -> PersonManifest:
        """The store's manifest (never a remembered one)."""
        return self._read_person(user_id, stale_ok=False).value

    def garment_manifest(self, user_id: str, clothing_id: str) -> GarmentManifest:
        """The store's manifest (never a remembered one)."""
        return self._read_garment(user_id, clothing_id, stale_ok=False).value

    def _read_person(self, user_id: str, stale_ok: bool) -> Read[PersonManifest]:
        missing = f"person of user {user_id!r} is not registered"
        return self._read(PersonManifest, keys.person_manifest(user_id), missing, stale_ok)

    def _read_garment(
        self, user_id: str, clothing_id: str, stale_ok: bool
    ) -> Read[GarmentManifest]:
        missing = f"garment {clothing_id!r} of user {user_id!r} is not registered"
        return self._read(
            GarmentManifest, keys.garment_manifest(user_id, clothing_id), missing, stale_ok
        )

    def _read(self, kind: type[M], key: str, missing: str, stale_ok: bool) -> Read[M]:
        """The manifest at `key`; with `stale_ok` a remembered one stands in for a store outage."""

        def fetch() -> M:
            try:
                return kind.decode(key, self.store.get(key))
            except MissingObject:
                raise NotRegistered(missing) from None

        return self.manifests.read(key, fetch, stale_ok)

    def gather(
        self, user_id: str, clothing_ids: Sequence[str], category: Category | str | None = None
    ) -> list[TryOnInputs]:
        """Everything needed to try each garment on the user's person, in the order given.

        Each garment is tried on in its own category unless `category` says otherwise. Raises
        InvalidInput (bad id), NotRegistered (naming everything missing), CorruptArtifact (naming
        the key), StoreUnavailable.
        """
        check_id("user_id", user_id)
        if not clothing_ids:
            raise InvalidInput("clothing_ids: give at least one garment")
        for clothing_id in clothing_ids:
            check_id("clothing_id", clothing_id)
        forced = None if category is None else Category.parse(category)
        for delay in _STALE_RETRIES:
            try:
                return self._gather_once(user_id, list(clothing_ids), forced)
            except StaleArtifact:
                time.sleep(delay)
        return self._gather_once(user_id, list(clothing_ids), forced)

    def _gather_once(
        self, user_id: str, clothing_ids: list[str], forced: Category | None
    ) -> list[TryOnInputs]:
        # 1. Manifests, in parallel: they give the versions and the garments' categories.
        manifests: list[Callable[[], Any]] = [partial(self._read_person, user_id, True)]
        manifests += [partial(self._read_garment, user_id, c, True) for c in clothing_ids]
        person_read, *garment_reads = self._run(manifests)
        person: PersonManifest = person_read.value
        garments: list[GarmentManifest] = [read.value for read in garment_reads]
        categories = [forced or garment.category for garment in garments]
        missing = sorted({c.value for c in categories} - {c.value for c in person.categories})
        if missing:
            has = ", ".join(c.value for c in person.categories)
            raise NotRegistered(
                f"person of user {user_id!r} is not registered for {', '.join(missing)} "
                f"(registered: {has})"
            )
        # 2. Every artifact (3 per person category, 2 per garment) at once, through the caches.
        wanted = list(dict.fromkeys(categories))
        loads = [
            self._load(keys.person_image(user_id, c, name), person.version, decode_image, mode)
            for c in wanted
            for name, mode in TRYON_IMAGES.items()
        ]
        for c, m in zip(clothing_ids, garments, strict=True):
            loads.append(self._load(keys.garment_image(user_id, c), m.version, decode_image, "RGB"))
            loads.append(self._load(keys.text(user_id, c), m.version, decode_versioned_text))
        with_photo = person.fit is not None and person.fit.mode == "crop"
        if with_photo:
            photo_key = keys.person_photo(user_id)
            loads.append(self._load(photo_key, person.version, decode_image, "RGB"))
        found: list[Found[Any]] = self._run(loads)
        photo = [found.pop()] if with_photo else []
        loaded = iter(found)

        # 3. Assembly, in the order of `loads`.
        persons: dict[Category, PersonArtifacts] = {}
        for c in wanted:
            images = {name: next(loaded) for name in TRYON_IMAGES}
            persons[c] = PersonArtifacts(
                user_id,
                c,
                person.version,
                person.fit,
                **{name: image.value for name, image in images.items()},
                photo=photo[0].value if photo else None,
                source=slowest(f.source for f in [*images.values(), *photo]),
                manifest_age_s=person_read.age_s,
            )
        inputs: list[TryOnInputs] = []
        for category, c, read in zip(categories, clothing_ids, garment_reads, strict=True):
            image, text = next(loaded), next(loaded)
            source = slowest([image.source, text.source])
            garment = GarmentArtifacts(
                user_id, c, read.value.version, image.value, text.value, source, read.age_s
            )
            inputs.append(TryOnInputs(persons[category], garment))
        return inputs

    def _load(
        self, key: str, version: str, decode: Callable[..., tuple[Any, int]], *args: Any
    ) -> Callable[[], Found[Any]]:
        """A task that gets `key` at `version` (and its source) through the caches;
        `decode(*args, key, version, data)` turns the stored bytes into the cached object."""
        return partial(
            self.cache.get,
            key,
            version,
            partial(self.store.get, key),
            partial(decode, *args, key, version),
        )

    def _run(self, tasks: list[Callable[[], Any]]) -> list[Any]:
        """Runs `tasks` on the pool and waits for all; raises the most telling failure."""
        futures: list[Future] = [self._pool.submit(task) for task in tasks]
        wait(futures)
        errors = [e for f in futures if (e := f.exception()) is not None]
        for kind in (StoreUnavailable, StaleArtifact, CorruptArtifact):
            for error in errors:
                if isinstance(error, kind):
                    raise error
        if errors:
            raise _merge_not_registered(errors)
        return [f.result() for f in futures]


def _merge_not_registered(errors: list[BaseException]) -> BaseException:
    """One NotRegistered naming everything missing, or the first other error."""
    others = [e for e in errors if not isinstance(e, NotRegistered)]
    if others:
        return others[0]
    messages = list(dict.fromkeys(str(e) for e in errors))
    if len(messages) == 1:
        return errors[0]
    return NotRegistered("; ".join(messages))
