"""One training job: frozen dataset -> images -> train -> evaluate -> export -> artifacts -> events.
The dataset's loading is dataset.py, the on-demand export flavours flavours.py; this module runs the job's
phases, reports its progress and events, and writes its artifacts.

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

from cvcore import artifacts, layout, manifest, messages, settings

from . import doctor, recipes
from .dataset import (
    SAMPLES,
    Decoded,
    decoded_bytes,
    holds_decoded,
    images_to_decode,
    labels_of,
    lazy_image,
    load_dataset,
    load_images,
    previous_config,
    readable,
)
from .errors import JobFailed, TrainingDiverged
from .flavours import write_int8
from .store import BlobFeatureCache, TrainerStore

# names reached through this module (tests/integration, benchmarks); the dataset's are defined in dataset.py
__all__ = [
    "SAMPLES",
    "JobFailed",
    "Progress",
    "decoded_bytes",
    "holds_decoded",
    "load_dataset",
    "load_images",
    "run_job",
    "train",
    "write_artifacts",
]

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0


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
        shown = [DetExample(image=images[n], boxes=boxes.get(n, []), key=key_of[n]) for n in images]

        if budget is None and device == "cpu":
            budget = settings.quick_cpu_seconds(recipes.DETECTION_QUICK_CPU_BUDGET_S)
        detected = train_detector(
            shown,
            labels,
            backbone=job.backbone,
            advanced=job.training_type == "Advanced",
            budget_seconds=budget,
            device=device,
            progress=progress,
            dataset_hash=job.dataset_hash,
        )
        detected.advice = doctor.diagnose_detector(
            [{"id": key_of[n], "boxes": boxes.get(n, [])} for n in key_of], [lab.name for lab in labels]
        )
        return detected
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

    domain = domains.get(job.domain_id)
    exportable = bool(domain and domain.exportable)
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
        result = train(job, m, Decoded(images, skipped, streamed=not keep), store, progress, device, previous)
        timings["train"] = round(time.monotonic() - started - timings["load images"], 3)
        result.config["started_at"] = started_at
        result.config["decoded_images"] = len(
            images
        )  # before training; lazy loads are counted in the embeddings
        result.config["streamed_images"] = not keep
        samples = [images[n] for n in list(images)[:SAMPLES]] or [
            lazy_image(store, m.project_id, im["image_id"])() for im in readable(m, skipped, SAMPLES)
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
