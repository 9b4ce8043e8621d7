"""A training job's frozen dataset: the iteration's COCO manifest, its images decoded (or streamed, see
holds_decoded), its labels, which images a Quick retraining must decode at all, and the previous
iteration's recipe it may reuse. What cannot be read fails the job with a reason (errors.JobFailed).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

from azure.core.exceptions import ResourceNotFoundError

from cvcore import artifacts, layout, manifest, messages, settings
from cvcore.imaging import ImageError, decode_rgb

from .errors import JobFailed
from .store import BlobFeatureCache, TrainerStore

log = logging.getLogger(__name__)
MAX_SKIPPED_FRACTION = 0.1  # more unreadable images than this fails the job as datasetCorrupt
SAMPLES = 4  # images the export checks the ONNX graph on


class Decoded(dict):
    """The decoded images by manifest number, the ids of those that could not be read (skipped), and whether
    the others are streamed (read and decoded on every use, see holds_decoded)."""

    def __init__(self, images: dict, skipped: list[str], streamed: bool = False):
        super().__init__(images)
        self.skipped, self.streamed = tuple(skipped), streamed


def readable(m: manifest.Manifest, skipped, n: int) -> list[manifest.ImageEntry]:
    """The first n manifest images that are not among the unreadable ones."""
    bad = set(skipped)
    return [im for im in m.images if im["image_id"] not in bad][:n]


def load_dataset(store: TrainerStore, project_id: str, iteration_id: str, blob: str | None = None):
    """The iteration's frozen COCO manifest (at `blob`, by default where the layout puts it)."""
    blob = blob or layout.iteration_dataset(project_id, iteration_id)
    try:
        data = store.read_model_blob(blob)
    except ResourceNotFoundError:
        raise JobFailed(messages.ERR_DATASET_NOT_FOUND, f"the frozen dataset {blob} is missing") from None
    try:
        m = manifest.loads(data)
    except manifest.ManifestError as exc:
        raise JobFailed(messages.ERR_DATASET_CORRUPT, f"the dataset manifest is invalid: {exc}") from None
    if m.project_id != project_id or m.iteration_id != iteration_id:
        raise JobFailed(messages.ERR_DATASET_CORRUPT, "the dataset manifest belongs to another iteration")
    return m


def load_images(
    store: TrainerStore,
    m: manifest.Manifest,
    pool: ThreadPoolExecutor,
    only: set[int] | None = None,
    keep: bool = True,
):
    """Decode the images (all, or the manifest image numbers in `only`); return ({number: RGB image},
    [unreadable image ids]). With keep=False every image is decoded to check it and dropped at once (a
    dataset too large to hold decoded, see holds_decoded), so the dict is empty. More than
    MAX_SKIPPED_FRACTION of the whole set unreadable fails the job."""

    def one(entry):
        try:
            image = decode_rgb(store.read_image(m.project_id, entry["image_id"]), max_bytes=None)
            return entry["id"], image if keep else True
        except (ResourceNotFoundError, ImageError) as exc:
            log.warning("image %s unreadable: %s", entry["image_id"], exc)
            return entry["id"], None

    decoded, bad = {}, []
    by_number = {im["id"]: im["image_id"] for im in m.images}
    wanted = [im for im in m.images if only is None or im["id"] in only]
    for number, image in pool.map(one, wanted):
        if image is None:
            bad.append(by_number[number])
        elif keep:
            decoded[number] = image
    if bad and len(bad) > MAX_SKIPPED_FRACTION * len(m.images):
        raise JobFailed(
            messages.ERR_DATASET_CORRUPT,
            f"{len(bad)} of {len(m.images)} images are missing or unreadable; delete or re-upload them",
            tuple(bad),
        )
    return decoded, bad


def decoded_bytes(m: manifest.Manifest, only: set[int] | None = None) -> int:
    """What holding the images decoded (RGB, 8 bits) would take, from the manifest's sizes."""
    return sum(
        3 * int(im.get("width") or 0) * int(im.get("height") or 0)
        for im in m.images
        if only is None or im["id"] in only
    )


def holds_decoded(m: manifest.Manifest, only: set[int] | None = None, limit_mb: float | None = None) -> bool:
    """Whether the job keeps its images decoded in memory (fast: each is decoded once) or streams them (each
    read and decoded whenever used, none kept): detectors always keep them; a classification dataset keeps
    them while they fit in TRAINER_DECODED_MB (settings.decoded_limit_mb)."""
    limit = settings.decoded_limit_mb() if limit_mb is None else limit_mb
    return m.task == "detection" or decoded_bytes(m, only) <= limit * 2**20


class lazy_image:  # lower case: called like the loader function it replaced
    """A loader for an image that was not decoded up front (its embedding was cached, or the dataset is
    streamed: then the Example calls it on every use and keeps nothing). A class rather than a closure so
    `streamed`, which the Example reads, is a declared attribute."""

    def __init__(self, store: TrainerStore, project_id: str, image_id: str, streamed: bool = False):
        self.store, self.project_id, self.image_id, self.streamed = store, project_id, image_id, streamed

    def __call__(self):
        try:
            return decode_rgb(self.store.read_image(self.project_id, self.image_id), max_bytes=None)
        except (ResourceNotFoundError, ImageError) as exc:
            raise JobFailed(
                messages.ERR_DATASET_CORRUPT,
                f"image {self.image_id} became unreadable during training "
                f"({type(exc).__name__}); delete or re-upload it",
                (self.image_id,),
            ) from None


def images_to_decode(
    store: TrainerStore, job: messages.TrainingJob, m: manifest.Manifest, previous: dict | None
) -> set[int] | None:
    """Which images a Quick retraining must decode: when it will reuse the previous recipe, only those whose
    embeddings are not cached (and a few samples for the export check); None = all of them."""
    if m.task != "classification":
        return None
    from .classification import reusable_recipe
    from .features import feature_name

    negative = {c["id"] for c in m.categories if c.get("type") == "Negative"}
    recipe, _ = reusable_recipe(
        previous,
        advanced=job.training_type == "Advanced",
        n=len(m.images),
        tags=len(m.categories) - len(negative),
        multilabel=m.classification_type == "Multilabel",
    )
    if recipe is None:
        return None
    cache = BlobFeatureCache(store, job.project_id)
    name = feature_name(recipe["backbone"])
    wanted = {im["id"] for im in m.images if cache.get((name, recipe["resolution"], im["image_id"])) is None}
    return wanted | {im["id"] for im in m.images[:SAMPLES]}


def labels_of(m: manifest.Manifest) -> list[artifacts.Label]:
    return [
        artifacts.Label(index=i, tag_id=c["tag_id"], name=c["name"], type=c.get("type", "Regular"))
        for i, c in enumerate(m.categories)
    ]


def previous_config(store: TrainerStore, job: messages.TrainingJob) -> dict | None:
    """The training config of the job's previous completed iteration (its recipe), when it is still there and
    was made for the same task and backbone; None otherwise (a first training, a changed domain, ...)."""
    if not job.previous_iteration_id:
        return None
    try:
        name = layout.iteration_artifact(
            job.project_id, layout.guid(job.previous_iteration_id), layout.TRAINING_CONFIG
        )
        config = json.loads(store.read_model_blob(name))
    except (ResourceNotFoundError, ValueError) as exc:
        log.info("no reusable recipe from %s: %s", job.previous_iteration_id, type(exc).__name__)
        return None
    previous_job = config.get("job") or {}
    if previous_job.get("task") != job.task or previous_job.get("backbone") != job.backbone:
        return None
    return {**config, "iteration_id": job.previous_iteration_id}
