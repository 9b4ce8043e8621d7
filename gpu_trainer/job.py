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

from cvcore import artifacts, layout, manifest, messages
from cvcore.imaging import ImageError, decode_rgb

from .classification import TrainingDiverged
from .store import BlobFeatureCache, TrainerStore

log = logging.getLogger(__name__)
MAX_SKIPPED_FRACTION = 0.1  # more unreadable images than this fails the job as datasetCorrupt
PROGRESS_EVERY_S = 5.0
QUICK_BUDGET_S = 45.0  # Regular training on the CPU: 10 tags x 50 images must finish within a minute


class JobFailed(Exception):
    """The job cannot succeed: report Failed with this code and message (no retry)."""

    def __init__(self, code: str, message: str, image_ids: tuple[str, ...] = ()):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.image_ids = code, message, image_ids


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
            raise JobFailed(messages.ERR_PROJECT_DELETED, "the iteration or its project was deleted while training")
        self.store.emit(messages.TrainingEvent(self.job.project_id, self.job.iteration_id, messages.TRAINING,
                                               progress=float(fraction), message=message, attempt=self.attempt))


def load_dataset(store: TrainerStore, job: messages.TrainingJob):
    try:
        data = store.read_model_blob(job.dataset_blob)
    except ResourceNotFoundError:
        raise JobFailed(messages.ERR_DATASET_NOT_FOUND, f"the frozen dataset {job.dataset_blob} is missing") from None
    try:
        m = manifest.loads(data)
    except manifest.ManifestError as exc:
        raise JobFailed(messages.ERR_DATASET_CORRUPT, f"the dataset manifest is invalid: {exc}") from None
    if m.project_id != job.project_id or m.iteration_id != job.iteration_id:
        raise JobFailed(messages.ERR_DATASET_CORRUPT, "the dataset manifest belongs to another iteration")
    return m


def load_images(store: TrainerStore, m: manifest.Manifest, pool: ThreadPoolExecutor):
    """Decode every image; return ({manifest image number: RGB image}, [unreadable image ids])."""
    def one(entry):
        try:
            return entry["id"], decode_rgb(store.read_image(m.project_id, entry["image_id"]), max_bytes=None)
        except (ResourceNotFoundError, ImageError) as exc:
            log.warning("image %s unreadable: %s", entry["image_id"], exc)
            return entry["id"], None

    decoded, bad = {}, []
    by_number = {im["id"]: im["image_id"] for im in m.images}
    for number, image in pool.map(one, m.images):
        if image is None:
            bad.append(by_number[number])
        else:
            decoded[number] = image
    if bad and len(bad) > MAX_SKIPPED_FRACTION * len(m.images):
        raise JobFailed(messages.ERR_DATASET_CORRUPT, f"{len(bad)} of {len(m.images)} images are missing or "
                                                      "unreadable; delete or re-upload them", tuple(bad))
    return decoded, bad


def labels_of(m: manifest.Manifest) -> list[artifacts.Label]:
    return [artifacts.Label(index=i, tag_id=c["tag_id"], name=c["name"], type=c.get("type", "Regular"))
            for i, c in enumerate(m.categories)]


def train(job: messages.TrainingJob, m: manifest.Manifest, images: dict, store: TrainerStore, progress,
          device: str):
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
        return train_detector(examples, labels, backbone=job.backbone, advanced=job.training_type == "Advanced",
                              budget_seconds=budget, device=device, progress=progress,
                              dataset_hash=job.dataset_hash)
    from .classification import Example, train_classifier
    tags_of: dict[int, list[int]] = {}
    for a in m.annotations:
        tags_of.setdefault(a["image_id"], []).append(index_of[a["category_id"]])
    negative = next((lab.index for lab in labels if lab.type == "Negative"), None)
    examples = [Example(image=images[n], labels=tuple(sorted(set(tags_of.get(n, [])) - {negative})), key=key_of[n])
                for n in images]
    return train_classifier(examples, labels, multilabel=m.classification_type == "Multilabel",
                            negative_index=negative, backbone=job.backbone, advanced=job.training_type == "Advanced",
                            budget_seconds=budget if budget else QUICK_BUDGET_S if device == "cpu" else None,
                            device=device, cache=BlobFeatureCache(store, job.project_id), progress=progress,
                            dataset_hash=job.dataset_hash)


def write_artifacts(store: TrainerStore, job: messages.TrainingJob, result, samples: list, skipped: list[str],
                    seconds: float) -> dict:
    from .export import ExportMismatch, export_onnx, quantize_int8
    from .report import write_report

    p, it = job.project_id, job.iteration_id
    sidecar = result.sidecar
    sidecar.created = messages.now_iso()
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        tmp = Path(tmp)
        detection = sidecar.task == artifacts.DETECTION
        if detection:
            from .detection import OUTPUT_NAMES
            export_onnx(result.model, sidecar, tmp / layout.MODEL_ONNX, samples, output_names=OUTPUT_NAMES)
            int8_problem = "int8 quantisation of detectors is not supported yet (it breaks the box decoding)"
        else:
            export_onnx(result.model, sidecar, tmp / layout.MODEL_ONNX, samples)
            int8_problem = None
            try:  # the int8 flavour is optional: a model that does not survive quantisation ships without it
                quantize_int8(tmp / layout.MODEL_ONNX, tmp / layout.MODEL_INT8_ONNX)
            except ExportMismatch as exc:
                int8_problem = str(exc)
                log.warning("no int8 flavour for %s: %s", it, exc)
            write_report(result.evaluation, sidecar.labels, tmp / "report")  # detection report: next session
        for name in (layout.MODEL_ONNX, layout.MODEL_INT8_ONNX):
            if (tmp / name).exists():
                store.write_artifact(p, it, name, (tmp / name).read_bytes(), "application/octet-stream")
        for name in (layout.REPORT_PR_CURVES, layout.REPORT_CONFUSION):
            if (tmp / name).exists():
                store.write_artifact(p, it, name, (tmp / name).read_bytes(), "image/png")
    store.write_json(p, it, layout.EVALUATION, result.evaluation)
    store.write_json(p, it, layout.TRAINING_CONFIG, {**result.config, "job": json.loads(messages.dumps(job)),
                                                     "int8_unavailable": int8_problem,
                                                     "skipped_image_ids": skipped, "training_seconds": seconds})
    store.write_json(p, it, layout.MODEL_SIDECAR, sidecar.to_json())
    summary = {"skipped_image_ids": skipped, "training_seconds": seconds, "metrics": sidecar.metrics}
    store.write_json(p, it, layout.COMPLETED_MARKER, summary)  # last: everything above is in place
    return summary


def completed_event(job: messages.TrainingJob, summary: dict, attempt: int, exportable: bool) -> messages.TrainingEvent:
    return messages.TrainingEvent(job.project_id, job.iteration_id, messages.COMPLETED, progress=1.0,
                                  message="training completed", training_seconds=summary["training_seconds"],
                                  skipped_image_ids=tuple(summary["skipped_image_ids"]), metrics=summary["metrics"],
                                  exportable=exportable, attempt=attempt)


def run_job(job: messages.TrainingJob, store: TrainerStore, attempt: int = 1, device: str | None = None) -> str:
    """Train one iteration end to end; returns the final status it reported."""
    from cvcore import domains

    exportable = bool(domains.get(job.domain_id) and domains.get(job.domain_id).exportable)
    marker = layout.iteration_artifact(job.project_id, job.iteration_id, layout.COMPLETED_MARKER)
    if store.exists(marker):  # a duplicated message: the work is done, just say so again
        store.emit(completed_event(job, json.loads(store.read_model_blob(marker)), attempt, exportable))
        return messages.COMPLETED
    started = time.monotonic()
    progress = Progress(store, job, attempt)
    try:
        if device is None:
            import torch
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if not store.iteration_exists(job.project_id, job.iteration_id):
            raise JobFailed(messages.ERR_PROJECT_DELETED, "the iteration or its project no longer exists")
        progress(0.0, f"loading the dataset ({device})")
        m = load_dataset(store, job)
        with ThreadPoolExecutor(8) as pool:
            images, skipped = load_images(store, m, pool)
        progress.last = 0.0
        progress(0.05, f"training on {len(images)} images")
        result = train(job, m, images, store, progress, device)
        samples = [images[n] for n in list(images)[:4]]
        summary = write_artifacts(store, job, result, samples, skipped, time.monotonic() - started)
        store.emit(completed_event(job, summary, attempt, exportable))
        return messages.COMPLETED
    except JobFailed as exc:
        log.warning("job %s failed: %s", job.iteration_id, exc)
        store.emit(messages.TrainingEvent(job.project_id, job.iteration_id, messages.FAILED, error_code=exc.code,
                                          error_message=exc.message, error_image_ids=exc.image_ids,
                                          training_seconds=time.monotonic() - started, attempt=attempt))
        return messages.FAILED
    except TrainingDiverged as exc:  # final: retrying the same data would diverge again
        store.emit(messages.TrainingEvent(job.project_id, job.iteration_id, messages.FAILED,
                                          error_code=messages.ERR_DIVERGED,
                                          error_message=f"the loss became non-finite: {exc}; add images or "
                                                        "check the labels", attempt=attempt,
                                          training_seconds=time.monotonic() - started))
        return messages.FAILED
