"""Try-ons as the API sees them: a request becomes one scheduler job plus what answering it needs
(the clothing ids, artifact timings and cache sources), kept by job id.

    reference (v2, batch): gather artifacts -> samples, finishers, result-cache keys -> submit
    inline (v1):           fit the uploaded images -> a sample and its finisher, uncached -> submit

Each item's Finish (paste-back, framing) is its finisher: the scheduler applies it before the
image's only PNG encode, so a result (fresh or cached) is already finished.

Every method may block (store, caches, the scheduler's result cache): call them from a thread.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from vton.cache import Source, slowest
from vton.engine.types import DiffusionOptions, SchedulerName, TryOnSample
from vton.errors import InvalidInput, NotRegistered, StoreUnavailable, VtonError
from vton.preprocess import ArtifactLoader, TryOnInputs
from vton.preprocess.fit import fit_photo
from vton.preprocess.inputs import check_description
from vton.preprocess.person import fit_mask, fit_pose
from vton.scheduler import ItemResult, Job, JobState, ResultKey, Scheduler
from vton.service.finish import Finish, Framing
from vton.service.results import result_cache_key
from vton.store.ids import Category

Kind = Literal["single", "batch", "inline"]


@dataclass(frozen=True)
class TryOnOptions:
    """A request's options: what the engine needs, and how the images are returned."""

    steps: int = 20
    scheduler: SchedulerName = "ddpm"
    guidance_scale: float = 2.0
    seed: int = 42
    paste_back: bool = True
    framing: Framing = "768x1024"


@dataclass(frozen=True)
class InlineImages:
    """The v1 request's decoded uploads."""

    person: Image.Image
    mask: Image.Image
    pose: Image.Image
    garment: Image.Image
    description: str
    category: Category


@dataclass(frozen=True)
class PlannedItem:
    """One requested garment: its place in the job, or the error that kept it out of the job."""

    clothing_id: str | None
    job_index: int | None
    error: VtonError | None = None


@dataclass(frozen=True)
class ItemView:
    """One item now: its state and, once finished, its finished PNG or its error."""

    clothing_id: str | None
    state: JobState
    png: bytes | None = None
    error: VtonError | None = None
    result: ItemResult | None = None


@dataclass
class TryOn:
    """A submitted request: its scheduler job and how to answer for each item."""

    job: Job
    kind: Kind
    items: list[PlannedItem]
    artifacts_ms: float
    cache_hits: dict[str, Source]
    started: float = field(default_factory=time.perf_counter)

    @property
    def clothing_ids(self) -> list[str]:
        return [item.clothing_id for item in self.items if item.clothing_id is not None]

    def view(self, index: int) -> ItemView:
        """Item `index` of the request."""
        planned = self.items[index]
        if planned.job_index is None:
            return ItemView(planned.clothing_id, JobState.FAILED, error=planned.error)
        status = self.job.snapshot().items[planned.job_index]
        if status.result is None:
            return ItemView(planned.clothing_id, status.state, error=status.error)
        result = status.result
        return ItemView(planned.clothing_id, status.state, png=result.png, result=result)

    def views(self) -> list[ItemView]:
        return [self.view(i) for i in range(len(self.items))]


class TryOnService:
    def __init__(
        self,
        loader: ArtifactLoader,
        scheduler: Scheduler,
        model_id: str,
        size: tuple[int, int],
        keep_s: float,
    ) -> None:
        """size: the working (width, height); keep_s: how long a try-on stays readable by id."""
        self.loader = loader
        self.scheduler = scheduler
        self.model_id = model_id
        self.width, self.height = size
        self.keep_s = keep_s
        self._tryons: OrderedDict[str, tuple[float, TryOn]] = OrderedDict()
        self._lock = threading.Lock()

    def diffusion_options(self, options: TryOnOptions) -> DiffusionOptions:
        return DiffusionOptions(
            steps=options.steps,
            scheduler=options.scheduler,
            guidance_scale=options.guidance_scale,
            height=self.height,
            width=self.width,
        )

    # -- submitting --------------------------------------------------------------------------

    def submit_reference(
        self,
        user_id: str,
        clothing_ids: list[str],
        category: Category | None,
        options: TryOnOptions,
        kind: Kind,
    ) -> TryOn:
        """Tries the user's registered garments on the user's person. A garment that cannot be
        loaded fails alone; if none can, its error is raised."""
        started = time.perf_counter()
        if len(set(clothing_ids)) != len(clothing_ids):
            raise InvalidInput("clothingIds: the same garment is listed twice")
        gathered = self._gather(user_id, clothing_ids, category)
        artifacts_ms = (time.perf_counter() - started) * 1000.0
        good = [g for g in gathered if not isinstance(g, VtonError)]
        if not good:
            raise gathered[0]  # type: ignore[misc]
        diffusion = self.diffusion_options(options)
        samples, cache_keys, finishers, items = [], [], [], []
        for clothing_id, got in zip(clothing_ids, gathered, strict=True):
            if isinstance(got, VtonError):
                items.append(PlannedItem(clothing_id, None, got))
                continue
            items.append(PlannedItem(clothing_id, len(samples)))
            finish = self._finish(got, options)
            samples.append(self._sample(got, options.seed))
            finishers.append(finish.apply)
            key = self._result_key(got, options.seed, diffusion, finish)
            cache_keys.append(result_cache_key(key))
        job = self.scheduler.submit(user_id, samples, diffusion, cache_keys, finishers)
        return TryOn(job, kind, items, artifacts_ms, self._sources(good), started)

    def submit_inline(self, user_id: str, images: InlineImages, options: TryOnOptions) -> TryOn:
        """One try-on of uploaded images; nothing is stored or cached."""
        started = time.perf_counter()
        person, fit = fit_photo(images.person)
        mask = fit_mask(images.mask, "mask", fit)
        sample = TryOnSample(
            person=person,
            mask=mask,
            pose=fit_pose(images.pose, fit),
            garment=fit_photo(images.garment)[0],
            description=check_description(images.description),
            seed=options.seed,
        )
        finish = Finish(person, mask, fit, options.paste_back, options.framing)
        diffusion = self.diffusion_options(options)
        job = self.scheduler.submit(user_id, [sample], diffusion, finishers=[finish.apply])
        items = [PlannedItem(None, 0)]
        artifacts_ms = (time.perf_counter() - started) * 1000.0
        return TryOn(job, "inline", items, artifacts_ms, {}, started)

    # -- asynchronous try-ons, by job id ------------------------------------------------------

    def track(self, tryon: TryOn) -> TryOn:
        """Keeps an asynchronous try-on readable by its job id for keep_s seconds (a synchronous
        one is answered once and needs no keeping)."""
        now = time.monotonic()
        with self._lock:
            self._tryons[tryon.job.id] = (now, tryon)
            while self._tryons:
                oldest_id, (kept_at, _) = next(iter(self._tryons.items()))
                if now - kept_at <= self.keep_s:
                    break
                del self._tryons[oldest_id]
        return tryon

    def get(self, user_id: str, job_id: str) -> TryOn:
        """The user's try-on; another user's, or an unknown or expired id, is NotRegistered."""
        with self._lock:
            kept = self._tryons.get(job_id)
        if kept is None or kept[1].job.user_id != user_id:
            raise NotRegistered(f"job {job_id!r} not found")
        return kept[1]

    def cancel(self, user_id: str, job_id: str) -> TryOn:
        tryon = self.get(user_id, job_id)
        self.scheduler.cancel(job_id, user_id)
        return tryon

    # -- internals ---------------------------------------------------------------------------

    def _gather(
        self, user_id: str, clothing_ids: list[str], category: Category | None
    ) -> list[TryOnInputs | VtonError]:
        """Every garment's inputs in one parallel load; if that fails, garment by garment, so a
        missing or broken garment fails alone."""
        try:
            return list(self.loader.gather(user_id, clothing_ids, category))
        except StoreUnavailable:
            raise
        except VtonError as first:
            if len(clothing_ids) == 1:
                raise
            if isinstance(first, NotRegistered):
                self.loader.person_manifest(user_id)  # no person: nothing can succeed
        results: list[TryOnInputs | VtonError] = []
        for clothing_id in clothing_ids:
            try:
                results.extend(self.loader.gather(user_id, [clothing_id], category))
            except StoreUnavailable:
                raise
            except VtonError as error:
                results.append(error)
        return results

    def _sample(self, inputs: TryOnInputs, seed: int) -> TryOnSample:
        person, garment = inputs.person, inputs.garment
        return TryOnSample(
            person=person.human_img,
            mask=person.mask,
            pose=person.pose,
            garment=garment.image,
            text=garment.text,
            seed=seed,
            person_key=f"{person.user_id}/{person.category.value}@{person.version}",
            garment_key=f"{garment.user_id}/{garment.clothing_id}@{garment.version}",
        )

    def _result_key(
        self, inputs: TryOnInputs, seed: int, diffusion: DiffusionOptions, finish: Finish
    ) -> ResultKey:
        person, garment = inputs.person, inputs.garment
        return ResultKey(
            user_id=person.user_id,
            person_version=f"{person.version}/{person.category.value}",
            garment_version=f"{garment.clothing_id}@{garment.version}",
            model=self.model_id,
            seed=seed,
            options=diffusion,
            finish=finish.key,
        )

    @staticmethod
    def _finish(inputs: TryOnInputs, options: TryOnOptions) -> Finish:
        person = inputs.person
        return Finish(
            person.human_img,
            person.mask,
            person.fit,
            options.paste_back,
            options.framing,
            person.photo,
        )

    @staticmethod
    def _sources(gathered: list[TryOnInputs]) -> dict[str, Source]:
        """Where the person's and each garment's artifacts came from (the slowest of each)."""
        sources: dict[str, Source] = {"person": slowest(i.person.source for i in gathered)}
        return sources | {i.garment.clothing_id: i.garment.source for i in gathered}
