"""One training job: frozen dataset -> images -> train -> evaluate -> export -> artifacts -> events.

Failures a person can act on become a Failed event with a reason (datasetNotFound, datasetCorrupt with
the image ids, diverged, projectDeleted); anything else propagates so the worker retries the message.
`_completed.json` is written last, so a duplicated message finds the work done and trains nothing.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError

from cvcore import artifacts, exports, layout, manifest, messages, settings
from cvcore.imaging import ImageError, decode_rgb

from . import doctor, recipes
from .errors import TrainingDiverged
from .store import BlobFeatureCache, TrainerStore

log = logging.getLogger(__name__)
MAX_SKIPPED_FRACTION = 0.1  # more unreadable images than this fails the job as datasetCorrupt
PROGRESS_EVERY_S = 5.0


class JobFailed(Exception):
    """The job cannot succeed: report Failed with this code and message (no retry)."""

    def __init__(self, code: str, message: str, image_ids: tuple[str, ...] = ()):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.image_ids = code, message, image_ids


class _Decoded(dict):
    """The decoded images by manifest number, the ids of those that could not be read (skipped), and whether
    the others are streamed (read and decoded on every use, see holds_decoded)."""

    def __init__(self, images: dict, skipped: list[str], streamed: bool = False):
        super().__init__(images)
        self.skipped, self.streamed = tuple(skipped), streamed


class Progress:
    """Throttled progress events; also notices when the iteration was deleted meanwhile."""

    def __init__(self, store: TrainerStore, job: messages.TrainingJob, attempt: int):
        self.store, self.job, self.attempt = store, job, attempt
        self.last = 0.0

    def __call__(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        if not self.store.iteration_exists(self.job.project_id, self.job.iteration_id):
            raise JobFailed(
                messages.ERR_PROJECT_DELETED, "the iteration or its project was deleted while training"
            )
        self.store.emit(
            messages.TrainingEvent(
                self.job.project_id,
                self.job.iteration_id,
                messages.TRAINING,
                progress=float(fraction),
                message=message,
                attempt=self.attempt,
            )
        )


def _readable(m: manifest.Manifest, skipped, n: int) -> list[dict]:
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


def lazy_image(store: TrainerStore, project_id: str, image_id: str, streamed: bool = False):
    """A loader for an image that was not decoded up front (its embedding was cached, or the dataset is
    streamed: then the Example calls it on every use and keeps nothing)."""

    def load():
        try:
            return decode_rgb(store.read_image(project_id, image_id), max_bytes=None)
        except (ResourceNotFoundError, ImageError) as exc:
            raise JobFailed(
                messages.ERR_DATASET_CORRUPT,
                f"image {image_id} became unreadable during training "
                f"({type(exc).__name__}); delete or re-upload it",
                (image_id,),
            ) from None

    load.streamed = streamed
    return load


SAMPLES = 4  # images the export checks the ONNX graph on


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


# The model doctor's time budget as a share of the training time: its checks run cheapest first and stop once
# this is spent (the last one may overrun it a little; the ceiling is 20%).
DOCTOR_SHARE = 0.17
DOCTOR_MIN_SECONDS = 2.0


def train(
    job: messages.TrainingJob,
    m: manifest.Manifest,
    images: dict,
    store: TrainerStore,
    progress,
    device: str,
    previous: dict | None = None,
):
    labels = labels_of(m)
    index_of = {c["id"]: i for i, c in enumerate(m.categories)}
    key_of = {im["id"]: im["image_id"] for im in m.images}
    budget = job.budget_hours * 3600 if job.training_type == "Advanced" else None
    if m.task == "detection":
        from .detection import DetExample, train_detector

        boxes: dict[int, list] = {}
        for a in m.annotations:
            boxes.setdefault(a["image_id"], []).append((index_of[a["category_id"]], *a["bbox"]))
        examples = [DetExample(image=images[n], boxes=boxes.get(n, []), key=key_of[n]) for n in images]

        if budget is None and device == "cpu":
            budget = settings.quick_cpu_seconds(recipes.DETECTION_QUICK_CPU_BUDGET_S)
        result = train_detector(
            examples,
            labels,
            backbone=job.backbone,
            advanced=job.training_type == "Advanced",
            budget_seconds=budget,
            device=device,
            progress=progress,
            dataset_hash=job.dataset_hash,
        )
        result.advice = doctor.diagnose_detector(
            [{"id": key_of[n], "boxes": boxes.get(n, [])} for n in key_of], [lab.name for lab in labels]
        )
        return result
    from .classification import Example, train_classifier

    tags_of: dict[int, list[int]] = {}
    for a in m.annotations:
        tags_of.setdefault(a["image_id"], []).append(index_of[a["category_id"]])
    negative = next((lab.index for lab in labels if lab.type == "Negative"), None)
    skipped = set(getattr(images, "skipped", ()))
    streamed = getattr(images, "streamed", False)
    examples = [
        Example(
            images[n] if n in images else lazy_image(store, m.project_id, key_of[n], streamed),
            tuple(sorted(set(tags_of.get(n, [])) - {negative})),
            key_of[n],
        )
        for n in key_of
        if key_of[n] not in skipped
    ]
    cache = BlobFeatureCache(store, job.project_id)
    started = time.monotonic()
    result = train_classifier(
        examples,
        labels,
        multilabel=m.classification_type == "Multilabel",
        negative_index=negative,
        backbone=job.backbone,
        advanced=job.training_type == "Advanced",
        budget_seconds=budget
        if budget
        else settings.quick_cpu_seconds(recipes.QUICK_CPU_BUDGET_S)
        if device == "cpu"
        else None,
        device=device,
        cache=cache,
        progress=progress,
        dataset_hash=job.dataset_hash,
        warm_start=previous,
    )
    progress(0.96, "diagnosing the data (model doctor)")
    result.advice = doctor.diagnose_classifier(
        examples,
        result.evidence,
        cache=cache,
        budget_seconds=max(DOCTOR_MIN_SECONDS, DOCTOR_SHARE * (time.monotonic() - started)),
        field=store.field_images(job.project_id, doctor.FIELD_SAMPLE),
        properties={im["image_id"]: im for im in m.images},
    )
    return result


def write_artifacts(
    store: TrainerStore,
    job: messages.TrainingJob,
    result,
    samples: list,
    skipped: list[str],
    seconds: float,
    timings: dict,
    workdir: Path,
) -> dict:
    """Export and check the ONNX graph, write every artifact, then the completion marker (last). Other export
    flavours (int8) are made on demand (run_export)."""
    from .export import export_onnx
    from .report import write_detection_report, write_report

    p, it = job.project_id, job.iteration_id
    mark = time.monotonic()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        timings[name] = round(now - mark, 3)
        mark = now

    sidecar = result.sidecar
    sidecar.created = messages.now_iso()
    detection = sidecar.task == artifacts.DETECTION
    if detection:
        from .detection import OUTPUT_NAMES

        export_onnx(result.model, sidecar, workdir / layout.MODEL_ONNX, samples, output_names=OUTPUT_NAMES)
    else:
        export_onnx(result.model, sidecar, workdir / layout.MODEL_ONNX, samples)
    lap("export onnx")
    if detection:
        write_detection_report(result.evaluation, workdir / "report")
    else:
        write_report(result.evaluation, sidecar.labels, workdir / "report")
    lap("report")
    store.write_artifact(
        p, it, layout.MODEL_ONNX, (workdir / layout.MODEL_ONNX).read_bytes(), "application/octet-stream"
    )
    for name in (layout.REPORT_PR_CURVES, layout.REPORT_CONFUSION):
        if (workdir / name).exists():
            store.write_artifact(p, it, name, (workdir / name).read_bytes(), "image/png")
    store.write_json(p, it, layout.EVALUATION, result.evaluation)
    advice = getattr(result, "advice", None)
    if advice is not None:
        from .report import advice_page

        store.write_json(p, it, layout.ADVICE, advice)
        store.write_artifact(
            p, it, layout.REPORT_ADVICE, advice_page(advice).encode(), "text/html; charset=utf-8"
        )
        timings["doctor"] = advice["seconds"]
    if detection:  # settled at once (not supported): an ONNXInt8 export is refused with the reason
        write_int8(store, p, it, sidecar.task, workdir / layout.MODEL_ONNX)
    lap("write artifacts")
    store.write_json(
        p,
        it,
        layout.TRAINING_CONFIG,
        {
            **result.config,
            "job": json.loads(messages.dumps(job)),
            "job_timings": timings,
            "skipped_image_ids": skipped,
            "training_seconds": seconds,
        },
    )
    store.write_json(p, it, layout.MODEL_SIDECAR, sidecar.to_json())
    summary = {"skipped_image_ids": skipped, "training_seconds": seconds, "metrics": sidecar.metrics}
    store.write_json(p, it, layout.COMPLETED_MARKER, summary)  # last: everything above is in place
    return summary


def write_int8(
    store: TrainerStore, project_id: str, iteration_id: str, task: str, model_path: Path, sample=None
) -> dict:
    """The ONNXInt8 flavour: quantise, check, upload, and say how it went in MODEL_INT8_STATUS (written last).
    A model that loses accuracy when quantised ships without it, and the status says why."""
    from .export import ExportMismatch, quantize_int8

    if task == artifacts.DETECTION:
        status = {
            "status": "Failed",
            "reason": "int8 quantisation of detectors is not supported yet (it breaks "
            "the box decoding); export ONNX12",
        }
    else:
        target = model_path.with_name(layout.MODEL_INT8_ONNX)
        try:
            found = quantize_int8(model_path, target, sample=sample)
            store.write_artifact(
                project_id,
                iteration_id,
                layout.MODEL_INT8_ONNX,
                target.read_bytes(),
                "application/octet-stream",
            )
            status = {"status": "Done", **found}
        except ExportMismatch as exc:
            log.warning("no int8 flavour for %s: %s", iteration_id, exc)
            status = {"status": "Failed", "reason": f"{exc}; export ONNX12 instead"}
    status["at"] = messages.now_iso()
    store.write_json(project_id, iteration_id, layout.MODEL_INT8_STATUS, status)
    return status


def run_export(job: messages.ExportJob, store: TrainerStore) -> dict:
    """An export asked for through the API (ExportJob): the int8 flavour, or a conversion (converters.py),
    of a completed iteration, checked on the first images of its dataset. Idempotent: a settled target is
    not made again. Returns the status note it wrote (Done, or Failed with the reason)."""
    p, it = job.project_id, job.iteration_id
    target = exports.find(job.platform, job.flavor)
    status_name = layout.iteration_artifact(p, it, target.status)
    if store.exists(status_name):
        return json.loads(store.read_model_blob(status_name))
    sidecar = artifacts.ModelSidecar.from_json(
        json.loads(store.read_model_blob(layout.iteration_artifact(p, it, layout.MODEL_SIDECAR)))
    )
    sample = None
    try:
        m = load_dataset(store, p, it)
        with ThreadPoolExecutor(4) as pool:
            images, _ = load_images(store, m, pool, {im["id"] for im in m.images[:SAMPLES]})
        if images:
            sample = artifacts.preprocess(list(images.values()), sidecar)
    except JobFailed as exc:  # int8: quantised without a calibration sample (dynamic), and unchecked
        log.warning("export %s of %s: no sample images (%s)", target.slug, it, exc)
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        path = Path(tmp) / layout.MODEL_ONNX
        path.write_bytes(store.read_model_blob(layout.iteration_artifact(p, it, layout.MODEL_ONNX)))
        if target.slug == "ONNXInt8":
            return write_int8(store, p, it, sidecar.task, path, sample)
        return write_converted(store, p, it, target, sidecar.task, path, sample)


def write_converted(
    store: TrainerStore, project_id: str, iteration_id: str, target, task: str, model_path: Path, sample
) -> dict:
    """Convert, check against ONNX on real images, upload the files, then the status note (written last)."""
    from . import converters
    from .export import ExportMismatch
    from .onnx_tf import UnsupportedGraph

    out_dir = model_path.parent / target.slug
    try:
        if sample is None or not len(sample):
            raise ExportMismatch("no readable training image to check the conversion on")
        convert = {
            "OpenVino": converters.to_openvino,
            "TensorFlowNormal": converters.to_savedmodel,
            "TensorFlowLite": converters.to_tflite,
        }[target.slug]
        found = convert(model_path, out_dir, sample, task)
        for name, inside in target.files:
            store.write_artifact(
                project_id, iteration_id, name, (out_dir / inside).read_bytes(), "application/octet-stream"
            )
        status = {"status": "Done", **found}
    except (ExportMismatch, ImportError, UnsupportedGraph) as exc:
        log.warning("no %s export for %s: %s", target.slug, iteration_id, exc)
        status = {
            "status": "Failed",
            "reason": f"{type(exc).__name__}: {exc}" if isinstance(exc, ImportError) else str(exc),
        }
    status["at"] = messages.now_iso()
    store.write_json(project_id, iteration_id, target.status, status)
    return status


def completed_event(
    job: messages.TrainingJob, summary: dict, attempt: int, exportable: bool
) -> messages.TrainingEvent:
    return messages.TrainingEvent(
        job.project_id,
        job.iteration_id,
        messages.COMPLETED,
        progress=1.0,
        message="training completed",
        training_seconds=summary["training_seconds"],
        skipped_image_ids=tuple(summary["skipped_image_ids"]),
        metrics=summary["metrics"],
        exportable=exportable,
        attempt=attempt,
    )


def run_job(
    job: messages.TrainingJob, store: TrainerStore, attempt: int = 1, device: str | None = None
) -> str:
    """Train one iteration end to end; returns the final status it reported."""
    from cvcore import domains

    exportable = bool(domains.get(job.domain_id) and domains.get(job.domain_id).exportable)
    marker = layout.iteration_artifact(job.project_id, job.iteration_id, layout.COMPLETED_MARKER)
    if store.exists(marker):  # a duplicated message: the work is done, just say so again
        store.emit(completed_event(job, json.loads(store.read_model_blob(marker)), attempt, exportable))
        return messages.COMPLETED
    started, started_at = time.monotonic(), messages.now_iso()
    progress = Progress(store, job, attempt)
    try:
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        if not store.iteration_exists(job.project_id, job.iteration_id):
            raise JobFailed(messages.ERR_PROJECT_DELETED, "the iteration or its project no longer exists")
        progress(0.0, f"loading the dataset ({device})")
        timings = {}
        m = load_dataset(store, job.project_id, job.iteration_id, job.dataset_blob)
        previous = previous_config(store, job)
        only = images_to_decode(store, job, m, previous)
        keep = holds_decoded(m, only)
        with ThreadPoolExecutor(8) as pool:
            images, skipped = load_images(store, m, pool, only, keep=keep)
        timings["load images"] = round(time.monotonic() - started, 3)
        progress.last = 0.0
        progress(
            0.05,
            f"training on {len(m.images) - len(skipped) if not keep else len(images)} images"
            f"{'' if keep else ' (streamed: too many to hold decoded)'}",
        )
        result = train(
            job, m, _Decoded(images, skipped, streamed=not keep), store, progress, device, previous
        )
        timings["train"] = round(time.monotonic() - started - timings["load images"], 3)
        result.config["started_at"] = started_at
        result.config["decoded_images"] = len(
            images
        )  # before training; lazy loads are counted in the embeddings
        result.config["streamed_images"] = not keep
        samples = [images[n] for n in list(images)[:SAMPLES]] or [
            lazy_image(store, m.project_id, im["image_id"])() for im in _readable(m, skipped, SAMPLES)
        ]
        with tempfile.TemporaryDirectory(prefix="export-") as tmp:
            summary = write_artifacts(
                store, job, result, samples, skipped, time.monotonic() - started, timings, Path(tmp)
            )
        store.emit(completed_event(job, summary, attempt, exportable))
        return messages.COMPLETED
    except JobFailed as exc:
        log.warning("job %s failed: %s", job.iteration_id, exc)
        store.emit(
            messages.TrainingEvent(
                job.project_id,
                job.iteration_id,
                messages.FAILED,
                error_code=exc.code,
                error_message=exc.message,
                error_image_ids=exc.image_ids,
                training_seconds=time.monotonic() - started,
                attempt=attempt,
            )
        )
        return messages.FAILED
    except TrainingDiverged as exc:  # final: retrying the same data would diverge again
        store.emit(
            messages.TrainingEvent(
                job.project_id,
                job.iteration_id,
                messages.FAILED,
                error_code=messages.ERR_DIVERGED,
                error_message=f"the loss became non-finite: {exc}; add images or check the labels",
                attempt=attempt,
                training_seconds=time.monotonic() - started,
            )
        )
        return messages.FAILED
