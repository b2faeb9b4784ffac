"""Try-ons as the API sees them: a request becomes one scheduler job whose `request` (a
TryOnRequest) holds what finishing and answering it needs: each item's clothing id, result-cache
key and Finish, the artifact timings and cache sources. The scheduler's job table is the one
registry: an asynchronous try-on is read back by its job id, a synchronous one leaves the table
once finished.

    reference (v2, batch): gather artifacts -> samples, result-cache hits, load errors -> submit
    inline (v1):           fit the uploaded images -> a sample, uncached -> submit

Items that fail before the engine and result-cache hits are settled at submit; the rest go
through `post_process` on the worker: the item's Finish (paste-back, framing), the image's only
PNG encode, the result cache.

Every method may block (store, caches): call them from a thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, cast

from PIL import Image

from vton.cache import Source, slowest
from vton.engine.types import DiffusionOptions, SchedulerName, TryOnOutput, TryOnSample
from vton.errors import InvalidInput, NotRegistered, StoreUnavailable, VtonError
from vton.preprocess import ArtifactLoader, TryOnInputs
from vton.preprocess.fit import fit_photo
from vton.preprocess.inputs import check_description
from vton.preprocess.person import fit_mask, fit_pose
from vton.scheduler import ItemResult, ItemStatus, Job, JobState, Scheduler, WorkItem
from vton.service.finish import Finish, Framing
from vton.service.results import ResultCache, ResultKey
from vton.store.ids import Category, GarmentKey, PersonKey
from vton.store.png import encode_png

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
class RequestItem:
    """One requested garment (clothing_id None: inline) and its result-cache key (None: not
    cached, or it never runs)."""

    clothing_id: str | None
    result_key: ResultKey | None = None


@dataclass(frozen=True)
class TryOnRequest:
    """What the service keeps with a job (Job.request), item for item in the request's order."""

    kind: Kind
    items: tuple[RequestItem, ...]
    artifacts_ms: float
    cache_hits: dict[str, Source]
    started: float = field(default_factory=time.perf_counter)
    finishes: dict[int, Finish] = field(default_factory=dict)
    """The Finish of each item to run, until post_process takes it: a job kept by id does not
    hold on to the person images."""
    stale_s: float | None = None
    """Set when the store did not answer: the age of the oldest remembered manifest used."""

    @property
    def clothing_ids(self) -> list[str]:
        return [item.clothing_id for item in self.items if item.clothing_id is not None]


@dataclass(frozen=True)
class ItemView:
    """One item now: its state and, once finished, its finished PNG or its error."""

    clothing_id: str | None
    state: JobState
    png: bytes | None = None
    error: VtonError | None = None
    result: ItemResult | None = None


@dataclass(frozen=True)
class TryOn:
    """A submitted try-on: its scheduler job, read with the request the service kept on it."""

    job: Job

    @property
    def request(self) -> TryOnRequest:
        return request_of(self.job)

    def view(self, index: int) -> ItemView:
        """Item `index` of the request."""
        return self._view(self.job.snapshot().items[index])

    def views(self) -> list[ItemView]:
        return [self._view(status) for status in self.job.snapshot().items]

    def _view(self, status: ItemStatus) -> ItemView:
        clothing_id = self.request.items[status.index].clothing_id
        result = status.result
        if result is None:
            return ItemView(clothing_id, status.state, error=status.error)
        png = cast(bytes, result.value)  # post_process's PNG, or the result cache's
        return ItemView(clothing_id, status.state, png=png, result=result)


def request_of(job: Job) -> TryOnRequest:
    """The TryOnRequest the service submitted the job with."""
    if not isinstance(job.request, TryOnRequest):
        raise TypeError(f"job {job.id} was not submitted by the try-on service")
    return job.request


def person_key(inputs: TryOnInputs) -> PersonKey:
    person = inputs.person
    return PersonKey(person.user_id, person.category, person.version)


def garment_key(inputs: TryOnInputs) -> GarmentKey:
    garment = inputs.garment
    return GarmentKey(garment.user_id, garment.clothing_id, garment.version)


def stale_age(gathered: list[TryOnInputs]) -> float | None:
    """The age of the oldest manifest that stood in for the store, or None if the store gave
    them all."""
    ages = [i.person.manifest_age_s for i in gathered] + [
        i.garment.manifest_age_s for i in gathered
    ]
    return max((age for age in ages if age is not None), default=None)


def post_process(
    results: ResultCache, item: WorkItem, output: TryOnOutput, timings_ms: dict[str, float]
) -> bytes:
    """The workers' PostProcess: the engine's image finished (paste-back, framing), encoded to
    the PNG that is returned, and put in the result cache; the first two timed (finish, png)."""
    request = request_of(item.job)
    finish = request.finishes.pop(item.index)
    started = time.perf_counter()
    image = finish.apply(output.pil)
    timings_ms["finish"] = (time.perf_counter() - started) * 1000.0
    started = time.perf_counter()
    png = encode_png(image)
    timings_ms["png"] = (time.perf_counter() - started) * 1000.0
    key = request.items[item.index].result_key
    if key is not None:
        results.put(key, png)
    return png


class TryOnService:
    def __init__(
        self,
        loader: ArtifactLoader,
        scheduler: Scheduler,
        results: ResultCache,
        model_id: str,
        size: tuple[int, int],
        job_timeout_s: float = 900.0,
    ) -> None:
        """results: the result cache the workers' post_process puts in; size: the working
        (width, height); job_timeout_s: an asynchronous try-on's deadline unless its submit
        names one (a synchronous one has the scheduler's request_timeout_s)."""
        self.loader = loader
        self.scheduler = scheduler
        self.results = results
        self.model_id = model_id
        self.width, self.height = size
        self.job_timeout_s = job_timeout_s

    def diffusion_options(self, options: TryOnOptions) -> DiffusionOptions:
        return DiffusionOptions(
            steps=options.steps,
            scheduler=options.scheduler,
            guidance_scale=options.guidance_scale,
            height=self.height,
            width=self.width,
        )

    # -- submitting --------------------------------------------------------------------------
    #
    # asynchronous: the try-on stays readable by its job id (get, cancel) for VTON_JOB_TTL_S
    # after it finishes; a synchronous one leaves the job table once finished (its caller holds
    # the TryOn).

    def submit_reference(
        self,
        user_id: str,
        clothing_ids: list[str],
        category: Category | None,
        options: TryOnOptions,
        kind: Kind,
        asynchronous: bool,
        timeout_s: float | None = None,
    ) -> TryOn:
        """Tries the user's registered garments on the user's person. A garment that cannot be
        loaded fails alone; if none can, its error is raised. timeout_s: to the deadline (see
        _timeout_s)."""
        started = time.perf_counter()
        if len(set(clothing_ids)) != len(clothing_ids):
            raise InvalidInput("clothingIds: the same garment is listed twice")
        gathered = self._gather(user_id, clothing_ids, category)
        artifacts_ms = (time.perf_counter() - started) * 1000.0
        good = [g for g in gathered if not isinstance(g, VtonError)]
        if not good:
            raise gathered[0]  # type: ignore[misc]
        diffusion = self.diffusion_options(options)
        items: list[TryOnSample | ItemResult | VtonError] = []
        planned: list[RequestItem] = []
        finishes: dict[int, Finish] = {}
        for clothing_id, got in zip(clothing_ids, gathered, strict=True):
            if isinstance(got, VtonError):
                items.append(got)
                planned.append(RequestItem(clothing_id))
                continue
            finish = self._finish(got, options)
            key = self._result_key(got, options.seed, diffusion, finish)
            planned.append(RequestItem(clothing_id, key))
            png = self.results.get(key)
            if png is not None:
                items.append(ItemResult(png, {}, cached=True))
                continue
            finishes[len(items)] = finish
            items.append(self._sample(got, options.seed))
        request = TryOnRequest(
            kind,
            tuple(planned),
            artifacts_ms,
            self._sources(good),
            started,
            finishes,
            stale_age(good),
        )
        timeout = self._timeout_s(asynchronous, timeout_s)
        return TryOn(
            self.scheduler.submit(user_id, items, diffusion, request, asynchronous, timeout)
        )

    def submit_inline(
        self,
        user_id: str,
        images: InlineImages,
        options: TryOnOptions,
        asynchronous: bool,
        timeout_s: float | None = None,
    ) -> TryOn:
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
        artifacts_ms = (time.perf_counter() - started) * 1000.0
        request = TryOnRequest(
            "inline", (RequestItem(None),), artifacts_ms, {}, started, {0: finish}
        )
        diffusion = self.diffusion_options(options)
        timeout = self._timeout_s(asynchronous, timeout_s)
        return TryOn(
            self.scheduler.submit(user_id, [sample], diffusion, request, asynchronous, timeout)
        )

    def _timeout_s(self, asynchronous: bool, timeout_s: float | None) -> float | None:
        """The deadline asked for; else job_timeout_s for an asynchronous try-on, and the
        scheduler's request_timeout_s (None) for a synchronous one."""
        if timeout_s is not None:
            return timeout_s
        return self.job_timeout_s if asynchronous else None

    # -- asynchronous try-ons, by job id ------------------------------------------------------

    def get(self, user_id: str, job_id: str) -> TryOn:
        """The user's try-on; another user's, or an unknown or expired id, is NotRegistered."""
        return TryOn(self.scheduler.get(job_id, user_id))

    def recent(self, user_id: str) -> list[TryOn]:
        """The user's asynchronous try-ons (running, or finished within the job TTL), newest
        first."""
        return [TryOn(job) for job in self.scheduler.jobs_of(user_id)]

    def cancel(self, user_id: str, job_id: str) -> TryOn:
        """Cancels the user's try-on (a finished one is left as it is)."""
        return TryOn(self.scheduler.cancel(job_id, user_id))

    def forget_person(self, user_id: str) -> None:
        """After the user's person is deleted: no job or cached result shows it any more (their
        by-reference jobs are cancelled and dropped; inline ones never used it)."""
        self.scheduler.forget(
            user_id, lambda job: request_of(job).kind != "inline", "its person was deleted"
        )
        self.results.forget(user_id)

    def forget_garment(self, user_id: str, clothing_id: str) -> None:
        """After the user's garment is deleted: no job or cached result shows it any more (a
        job that tried it on is cancelled and dropped whole, with the other garments of its
        batch)."""
        self.scheduler.forget(
            user_id,
            lambda job: clothing_id in request_of(job).clothing_ids,
            "a garment of it was deleted",
        )
        self.results.forget(user_id, clothing_id)

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
            person_key=person_key(inputs),
            garment_key=garment_key(inputs),
        )

    def _result_key(
        self, inputs: TryOnInputs, seed: int, diffusion: DiffusionOptions, finish: Finish
    ) -> ResultKey:
        return ResultKey(
            person=person_key(inputs),
            garment=garment_key(inputs),
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
