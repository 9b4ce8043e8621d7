"""The storage layout: every container, queue, table and blob path, in one place.

Ids that become part of a blob path or a table key are validated as GUIDs here, so a caller can never
smuggle `..` or a `/` into a path through an id.
"""

from __future__ import annotations

import struct
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
PROJECT_IMPORTS = (
    "project-imports"  # large import_project requests, finished by a queue trigger (Functions only)
)
WEBHOOK_DELIVERIES = "webhook-deliveries"  # project webhook deliveries and their retries (Functions only)
QUEUES = (TRAINING_JOBS, TRAINING_EVENTS, PROJECT_IMPORTS, WEBHOOK_DELIVERIES)
POISON_SUFFIX = "-poison"
ALL_QUEUES = QUEUES + tuple(q + POISON_SUFFIX for q in QUEUES)

# Tables.
PROJECTS_TABLE = "projects"  # PartitionKey "project", RowKey projectId
TAGS_TABLE = "tags"  # PartitionKey projectId, RowKey tagId
IMAGES_TABLE = "images"  # PartitionKey projectId, RowKey imageId
ITERATIONS_TABLE = "iterations"  # PartitionKey projectId, RowKey iterationId
# Stored predictions: PartitionKey projectId; each prediction is two rows with the same properties, RowKey
# predictionId (newest first, see new_prediction_id) and RowKey OLDEST_FIRST + oldest_first_key (oldest first).
PREDICTIONS_TABLE = "predictions"
TABLES = (PROJECTS_TABLE, TAGS_TABLE, IMAGES_TABLE, ITERATIONS_TABLE, PREDICTIONS_TABLE)
PROJECT_PARTITION = "project"
PROJECT_DELETING = "Deleting"  # a project row's Status while its deletion runs (the trainer reads it)
DELETION_PARTITION = "deletion"  # projects table: how each background project deletion went
# The Image Analysis 4.0 model-customization registry (functions/vision) shares the projects table, one
# partition per kind, RowKey the dataset or model name: "ia-dataset", "ia-model", "ia-evaluation:{model name}".
VISION_PARTITION_PREFIX = "ia-"

# Image ids are content addressed inside a project: the same bytes uploaded twice get the same id, which
# is how exact duplicates are found without a second index.
_IMAGE_ID_NAMESPACE = uuid.UUID("6f6b2b52-9d0e-4f0c-9a8e-3c1f4d2b7a10")


def guid(value: object, field: str = "id") -> str:
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


# Prediction ids carry their creation time, inverted, in their first 48 bits (milliseconds since the Unix
# epoch subtracted from 2**48 - 1), then RFC 9562 version 8 and variant bits, then 74 random bits. Their
# canonical strings therefore sort newest first, so a RowKey range scan lists predictions newest first
# and a time window is a RowKey range; OLDEST_FIRST rows ('~' sorts after every hex digit) mirror them,
# and UNCERTAIN_FIRST rows ('u', between the two) list them most uncertain first (uncertain_first_key).
_MS_MASK = (1 << 48) - 1
OLDEST_FIRST = "~"
UNCERTAIN_FIRST = "u"
NEWEST_END = "g"  # sorts after every hex digit and '-': the end of the newest-first (prediction id) key space


def new_prediction_id(created_ms: int) -> str:
    """A fresh prediction id for a prediction made at `created_ms` (Unix milliseconds)."""
    random_bits = uuid.uuid4().int
    value = ((_MS_MASK - (int(created_ms) & _MS_MASK)) << 80) | (random_bits & ((1 << 80) - 1))
    value = (value & ~(0xF << 76)) | (0x8 << 76)  # version 8 (custom)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC variant
    return str(uuid.UUID(int=value))


def prediction_time_ms(prediction_id: str) -> int:
    """When the prediction was made (Unix milliseconds), read back from its id."""
    return _MS_MASK - (uuid.UUID(guid(prediction_id, "predictionId")).int >> 80)


def prediction_time_key(created_ms: int) -> str:
    """The newest-first RowKey bound for a time: ids made at `created_ms` sort from here (inclusive)."""
    return str(uuid.UUID(int=(_MS_MASK - (int(created_ms) & _MS_MASK)) << 80))


def oldest_first_key(prediction_id: str) -> str:
    """The RowKey of a prediction's oldest-first row: its time forward, then its id."""
    return f"{OLDEST_FIRST}{prediction_time_ms(prediction_id):012x}{guid(prediction_id, 'predictionId')}"


def oldest_first_time_key(created_ms: int) -> str:
    """The oldest-first RowKey bound for a time: rows made at `created_ms` sort from here (inclusive)."""
    return f"{OLDEST_FIRST}{int(created_ms) & _MS_MASK:012x}"


def uncertain_first_key(uncertainty: float, prediction_id: str | None = None) -> str:
    """The RowKey of a prediction's most-uncertain-first row: the uncertainty (0..1) inverted, exactly (a
    non-negative double's bits sort like the number), then the id; without an id, the bound where rows of
    that uncertainty start."""
    bits = struct.unpack(">Q", struct.pack(">d", min(max(float(uncertainty), 0.0), 1.0) + 0.0))[0]
    key = f"{UNCERTAIN_FIRST}{(1 << 64) - 1 - bits:016x}"
    return key + guid(prediction_id, "predictionId") if prediction_id is not None else key


def uncertain_first_parts(row_key: str) -> tuple[float, str]:
    """(uncertainty, prediction id) read back from an uncertain_first_key row key: exactly what it sorts by."""
    bits = (1 << 64) - 1 - int(row_key[len(UNCERTAIN_FIRST) : len(UNCERTAIN_FIRST) + 16], 16)
    return struct.unpack(">d", struct.pack(">Q", bits))[0], row_key[len(UNCERTAIN_FIRST) + 16 :]


def project_prefix(project_id: str) -> str:
    """Prefix of every blob a project owns, in every container."""
    return f"{guid(project_id, 'projectId')}/"


def image_original(project_id: str, image_id: str) -> str:
    return f"{project_prefix(project_id)}originals/{guid(image_id, 'imageId')}"


def image_thumbnail(project_id: str, image_id: str) -> str:
    return f"{project_prefix(project_id)}thumbnails/{guid(image_id, 'imageId')}.jpg"


def prediction_image(project_id: str, prediction_id: str) -> str:
    """A stored prediction's image (container PREDICTIONS), as checked and normalised like a training image."""
    return f"{project_prefix(project_id)}originals/{guid(prediction_id, 'predictionId')}"


def prediction_thumbnail(project_id: str, prediction_id: str) -> str:
    return f"{project_prefix(project_id)}thumbnails/{guid(prediction_id, 'predictionId')}.jpg"


def iteration_prefix(project_id: str, iteration_id: str) -> str:
    return f"{project_prefix(project_id)}{guid(iteration_id, 'iterationId')}/"


def iteration_dataset(project_id: str, iteration_id: str) -> str:
    """The frozen COCO manifest the iteration trains on (cvcore.manifest)."""
    return iteration_prefix(project_id, iteration_id) + "dataset.json"


# Artifacts the trainer writes under models/{project}/{iteration}/ (cvcore.artifacts describes them).
MODEL_ONNX = "model.onnx"
MODEL_INT8_ONNX = "model.int8.onnx"
# the int8 flavour is made on demand, when an export asks for it (exports are asynchronous, as in Custom Vision):
# this note, written last, says whether it succeeded ({"status": "Done"} or {"status": "Failed", "reason": ...})
MODEL_INT8_STATUS = "model.int8.json"
MODEL_SIDECAR = "model.json"
TRAINING_CONFIG = "config.json"
EVALUATION = "evaluation.json"  # metrics plus per-image scores, so any threshold can be re-evaluated
REPORT_PR_CURVES = "report/pr_curves.png"
REPORT_CONFUSION = "report/confusion_matrix.png"
ADVICE = "advice.json"  # the model doctor's findings (gpu_trainer/doctor/), GET .../iterations/{id}/advice
REPORT_ADVICE = "report/advice.html"  # the same as a page
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


# COCO import and export (functions/training/coco_import.py, coco_export.py, project_transfer.py).
COCO_SUFFIX = ".coco.json"  # uploads/{project}/**/{name}.coco.json is imported as a COCO dataset
COCO_DATASET_FOLDER = "_coco"  # uploads/{project}/_coco/**: images kept for COCO files, never ingested alone
_TAG_ID_NAMESPACE = uuid.UUID("0b7c2f6e-54a1-4d8e-9c3b-7e2d1a9f6c45")


def tag_id_for(project_id: str, name: str) -> str:
    """The id an import gives a new tag: the same name (without case) gets the same id, so two deliveries
    of one import create one tag."""
    return str(uuid.uuid5(_TAG_ID_NAMESPACE, f"{guid(project_id)}:{name.strip().casefold()}"))


def coco_import_status(project_id: str, relative_name: str) -> str:
    """Progress and receipt of the COCO drop `uploads/{project}/{relative_name}` (in the models container,
    which no trigger watches). `relative_name` must already be a safe relative path (cvcore.coco)."""
    return f"{project_prefix(project_id)}imports/{relative_name}.status.json"


def project_export(project_id: str, export_id: str) -> str:
    """The snapshot behind a project export token: a COCO file whose images carry read URLs."""
    return f"{project_prefix(project_id)}exports/{guid(export_id, 'exportId')}{COCO_SUFFIX}"
