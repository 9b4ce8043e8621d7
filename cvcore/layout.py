"""The storage layout: every container, queue, table and blob path, in one place.

Ids that become part of a blob path or a table key are validated as GUIDs here, so a caller can never
smuggle `..` or a `/` into a path through an id.
"""

from __future__ import annotations

import uuid

# Blob containers.
IMAGES = "images"  # training images: originals and thumbnails
MODELS = "models"  # per-iteration artifacts and frozen datasets
PREDICTIONS = "predictions"  # stored prediction images
UPLOADS = "uploads"  # drop zone watched by the ingest blob trigger
REJECTED = "rejected"  # drops that failed validation, each beside a .error.json
CONTAINERS = (IMAGES, MODELS, PREDICTIONS, UPLOADS, REJECTED)

# Queues (the Functions host adds "-poison" siblings; infra declares them too).
TRAINING_JOBS = "training-jobs"
TRAINING_EVENTS = "training-events"
QUEUES = (TRAINING_JOBS, TRAINING_EVENTS)
POISON_SUFFIX = "-poison"
ALL_QUEUES = QUEUES + tuple(q + POISON_SUFFIX for q in QUEUES)

# Tables.
PROJECTS_TABLE = "projects"  # PartitionKey "project", RowKey projectId
TAGS_TABLE = "tags"  # PartitionKey projectId, RowKey tagId
IMAGES_TABLE = "images"  # PartitionKey projectId, RowKey imageId
ITERATIONS_TABLE = "iterations"  # PartitionKey projectId, RowKey iterationId
TABLES = (PROJECTS_TABLE, TAGS_TABLE, IMAGES_TABLE, ITERATIONS_TABLE)
PROJECT_PARTITION = "project"

# Image ids are content addressed inside a project: the same bytes uploaded twice get the same id, which
# is how exact duplicates are found without a second index.
_IMAGE_ID_NAMESPACE = uuid.UUID("6f6b2b52-9d0e-4f0c-9a8e-3c1f4d2b7a10")


def guid(value: str, field: str = "id") -> str:
    """Return `value` as a canonical lower-case GUID string, or raise ValueError naming the field."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{field} must be a GUID, got {str(value)[:64]!r}") from None


def new_id() -> str:
    return str(uuid.uuid4())


def image_id_for(project_id: str, sha256_hex: str) -> str:
    """The id an image with this content has in this project."""
    return str(uuid.uuid5(_IMAGE_ID_NAMESPACE, f"{guid(project_id)}:{sha256_hex}"))


def project_prefix(project_id: str) -> str:
    """Prefix of every blob a project owns, in every container."""
    return f"{guid(project_id, 'projectId')}/"


def image_original(project_id: str, image_id: str) -> str:
    return f"{project_prefix(project_id)}originals/{guid(image_id, 'imageId')}"


def image_thumbnail(project_id: str, image_id: str) -> str:
    return f"{project_prefix(project_id)}thumbnails/{guid(image_id, 'imageId')}.jpg"


def iteration_prefix(project_id: str, iteration_id: str) -> str:
    return f"{project_prefix(project_id)}{guid(iteration_id, 'iterationId')}/"


def iteration_dataset(project_id: str, iteration_id: str) -> str:
    """The frozen COCO manifest the iteration trains on (cvcore.manifest)."""
    return iteration_prefix(project_id, iteration_id) + "dataset.json"


# Artifacts the trainer writes under models/{project}/{iteration}/ (cvcore.artifacts describes them).
MODEL_ONNX = "model.onnx"
MODEL_INT8_ONNX = "model.int8.onnx"
# the int8 flavour is made after the iteration completes (exports are asynchronous, as in Custom Vision): this
# note, written last, says whether it succeeded ({"status": "Done"} or {"status": "Failed", "reason": ...})
MODEL_INT8_STATUS = "model.int8.json"
MODEL_SIDECAR = "model.json"
TRAINING_CONFIG = "config.json"
EVALUATION = "evaluation.json"  # metrics plus per-image scores, so any threshold can be re-evaluated
REPORT_PR_CURVES = "report/pr_curves.png"
REPORT_CONFUSION = "report/confusion_matrix.png"
COMPLETED_MARKER = "_completed.json"  # written last: its presence means every artifact above is in place


def iteration_artifact(project_id: str, iteration_id: str, name: str) -> str:
    return iteration_prefix(project_id, iteration_id) + name


def embedding_pack(project_id: str, feature: str, resolution: int) -> str:
    """Backbone features of a project's images for one feature extractor and resolution, packed in one blob
    (image ids inside are content addressed, so an entry never goes stale)."""
    safe = "".join(c for c in feature if c.isalnum() or c in "-_")
    return f"{project_prefix(project_id)}_cache/{safe}-{int(resolution)}.npz"


def rejected_error_name(blob_name: str) -> str:
    """Name of the error report written beside a rejected drop."""
    return blob_name + ".error.json"
