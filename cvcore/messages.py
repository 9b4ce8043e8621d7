"""Versioned queue message schemas shared by the Functions app and the trainer.

`training-jobs` carries TrainingJob and ExportJob (Functions -> trainer); `training-events` carries TrainingEvent
(trainer -> the Functions app's queue trigger, the only writer of iteration rows). Parsing is strict: an
unknown version or a missing field raises MessageError naming it, and the message goes to poison.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime

from . import exports, layout

VERSION = 1

# Iteration statuses as Custom Vision names them.
QUEUED, TRAINING, COMPLETED, FAILED = "Queued", "Training", "Completed", "Failed"
TERMINAL = (COMPLETED, FAILED)

# trainingErrorDetails codes a person can act on.
ERR_DIVERGED = "diverged"
ERR_DATASET_CORRUPT = "datasetCorrupt"
ERR_DATASET_NOT_FOUND = "datasetNotFound"
ERR_NOT_ENOUGH_BUDGET = "notEnoughBudget"
ERR_PROJECT_DELETED = "projectDeleted"
ERR_TOO_MANY_ATTEMPTS = "tooManyAttempts"
ERR_INTERNAL = "internalError"


class MessageError(ValueError):
    """A queue message that does not follow its schema."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class TrainingJob:
    project_id: str
    iteration_id: str
    task: str  # "classification" or "detection"
    classification_type: str | None  # Multiclass / Multilabel; None for detection
    domain_id: str
    backbone: str
    training_type: str  # Regular or Advanced
    budget_hours: float
    dataset_blob: str  # path inside the models container
    dataset_hash: str
    requested_at: str = field(default_factory=now_iso)
    version: int = VERSION
    previous_iteration_id: str | None = (
        None  # the last completed iteration: Quick retraining may reuse its recipe
    )


@dataclass(frozen=True)
class ExportJob:
    """Make a CONVERTED export target (cvcore.exports) of a completed iteration on demand: the trainer
    writes the target's model file(s) and then its status note, which the export routes read."""

    project_id: str
    iteration_id: str
    flavor: str
    platform: str = "ONNX"
    requested_at: str = field(default_factory=now_iso)
    version: int = VERSION


@dataclass(frozen=True)
class TrainingEvent:
    project_id: str
    iteration_id: str
    status: str  # Training (progress) / Completed / Failed
    progress: float = 0.0  # 0..1
    message: str = ""
    error_code: str | None = None
    error_message: str | None = None
    error_image_ids: tuple[str, ...] = ()
    skipped_image_ids: tuple[str, ...] = ()
    training_seconds: float | None = None
    exportable: bool = False
    metrics: dict | None = (
        None  # precision, recall, averagePrecision (and mAP/top-k) at the default threshold
    )
    attempt: int = 1
    at: str = field(default_factory=now_iso)
    version: int = VERSION


@dataclass(frozen=True)
class ExportEvent:
    """The trainer settled an ExportJob (status Done or Failed, with the reason): the Functions app zips it,
    copies it to the project's export container and notifies the project's queue (storage integration)."""

    project_id: str
    iteration_id: str
    platform: str
    flavor: str
    status: str  # Done / Failed
    reason: str = ""
    at: str = field(default_factory=now_iso)
    version: int = VERSION


def dumps(message: TrainingJob | ExportJob | TrainingEvent | ExportEvent) -> str:
    body = asdict(message)
    body["kind"] = type(message).__name__
    return json.dumps(body, separators=(",", ":"))


def _parse(text: str | bytes, cls):
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MessageError("a JSON object is required")
    if body.get("version") != VERSION:
        raise MessageError(f"version: {body.get('version')!r} is not supported (this code reads {VERSION})")
    if body.get("kind") not in (None, cls.__name__):
        raise MessageError(f"kind: expected {cls.__name__}, got {body.get('kind')!r}")
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - body.keys())
    if missing:
        raise MessageError(f"missing fields: {', '.join(missing)}")
    values = {k: v for k, v in body.items() if k in names}
    for key in ("project_id", "iteration_id"):
        try:
            values[key] = layout.guid(values[key], key)
        except ValueError as exc:
            raise MessageError(str(exc)) from None
    for key in ("error_image_ids", "skipped_image_ids"):
        if key in values:
            values[key] = tuple(values[key] or ())
    return cls(**values)


def parse_job(text: str | bytes) -> TrainingJob:
    job = _parse(text, TrainingJob)
    if job.task not in ("classification", "detection"):
        raise MessageError(f"task: {job.task!r} is not classification or detection")
    return job


def _kind(text: str | bytes) -> str | None:
    """The `kind` a message names (None when it names none or is not a JSON object: _parse says why)."""
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    return body.get("kind") if isinstance(body, dict) else None


def parse_work(text: str | bytes) -> TrainingJob | ExportJob:
    """A `training-jobs` message: an ExportJob when its kind says so, else a TrainingJob."""
    if _kind(text) == ExportJob.__name__:
        job = _parse(text, ExportJob)
        made = {(t.platform, t.flavor) for t in exports.TARGETS if t.made == exports.CONVERTED}
        if (job.platform, job.flavor) not in made:
            raise MessageError(
                f"platform/flavor: {job.platform}/{job.flavor} is not one the trainer makes "
                f"({', '.join('/'.join(m) for m in sorted(made))})"
            )
        return job
    return parse_job(text)


def parse_event(text: str | bytes) -> TrainingEvent | ExportEvent:
    """A `training-events` message: an ExportEvent when its kind says so, else a TrainingEvent."""
    if _kind(text) == ExportEvent.__name__:
        settled = _parse(text, ExportEvent)
        if settled.status not in ("Done", "Failed"):
            raise MessageError(f"status: {settled.status!r} is not Done or Failed")
        return settled
    event = _parse(text, TrainingEvent)
    if event.status not in (TRAINING, COMPLETED, FAILED):
        raise MessageError(f"status: {event.status!r} is not Training, Completed or Failed")
    return event
