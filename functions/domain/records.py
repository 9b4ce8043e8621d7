"""Domain records of the Training API (projects, tags, images, iterations), below every API package:
prediction and vision read them too, so they live here rather than in training/. Storage adapters map
them to table entities, training/serialize.py maps them to Custom Vision's JSON shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from cvcore import domains, layout

MULTICLASS = "Multiclass"
MULTILABEL = "Multilabel"
REGULAR = "Regular"
NEGATIVE = "Negative"
GENERAL_PRODUCT = "GeneralProduct"
TAG_TYPES = (REGULAR, NEGATIVE, GENERAL_PRODUCT)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    """The timestamp format of every API's JSON (milliseconds, Z), shared so Training, Prediction and Image
    Analysis replies agree to the character."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


DELETING = layout.PROJECT_DELETING  # Project.status while a background deletion runs


@dataclass
class Project:
    id: str
    name: str
    description: str
    domain_id: str
    classification_type: str | None
    target_export_platforms: list[str]
    created: datetime
    last_modified: datetime
    use_negative_set: bool = True
    augmentation_methods: dict[str, bool] | None = None
    status: str = "Succeeded"  # Custom Vision's ProjectStatus: Succeeded, Importing (import_project), Failed;
    # and DELETING while a background deletion runs (training/deletion.py): the project is gone for the API
    status_message: str = ""  # why an import Failed
    export_model_container_uri: str = ""  # storage integration (training/integration.py)
    notification_queue_uri: str = ""
    webhook_uri: str = ""  # training/webhooks.py
    webhook_secret: str = ""

    @property
    def domain(self) -> domains.Domain:
        return domains.get(self.domain_id) or domains.DEFAULT_CLASSIFICATION

    @property
    def is_detection(self) -> bool:
        return self.domain.type == domains.OBJECT_DETECTION


@dataclass
class Tag:
    id: str
    name: str
    description: str
    type: str
    created: datetime


@dataclass
class Region:
    id: str
    tag_id: str
    left: float
    top: float
    width: float
    height: float
    created: datetime

    def same_box(self, other: Region, tolerance: float = 1e-6) -> bool:
        return self.tag_id == other.tag_id and all(
            abs(a - b) <= tolerance
            for a, b in zip(
                (self.left, self.top, self.width, self.height),
                (other.left, other.top, other.width, other.height),
                strict=True,
            )
        )


@dataclass
class ImageRecord:
    id: str
    created: datetime
    width: int
    height: int
    content_type: str
    tags: dict[str, datetime] = field(default_factory=dict)  # explicit tags: tagId -> when added
    regions: list[Region] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""
    camera: str = ""  # EXIF "Make Model" of the upload, "" when it had none
    source_format: str = ""  # Pillow's name of the uploaded format (the stored bytes may be a re-encode)
    etag: str | None = None  # storage concurrency token; not part of the record's meaning

    def tag_ids(self) -> set[str]:
        """Every tag on the image: explicit tags and the tags of its regions."""
        return set(self.tags) | {r.tag_id for r in self.regions}

    @property
    def is_tagged(self) -> bool:
        return bool(self.tags or self.regions)


@dataclass(frozen=True)
class ImageCounts:
    """How many images a project has: in all, tagged, and per tag (explicit tags and regions' tags)."""

    images: int = 0
    tagged: int = 0
    per_tag: dict[str, int] = field(default_factory=dict)

    @property
    def untagged(self) -> int:
        return self.images - self.tagged

    @classmethod
    def of(cls, images) -> ImageCounts:
        per_tag: dict[str, int] = {}
        tagged = n = 0
        for im in images:
            n += 1
            tags = im.tag_ids()
            tagged += bool(tags)
            for t in tags:
                per_tag[t] = per_tag.get(t, 0) + 1
        return cls(n, tagged, per_tag)

    def __add__(self, other: ImageCounts) -> ImageCounts:
        per_tag = dict(self.per_tag)
        for t, n in other.per_tag.items():
            per_tag[t] = per_tag.get(t, 0) + n
        return ImageCounts(
            self.images + other.images, self.tagged + other.tagged, {t: n for t, n in per_tag.items() if n}
        )

    def __neg__(self) -> ImageCounts:
        return ImageCounts(-self.images, -self.tagged, {t: -n for t, n in self.per_tag.items()})

    def __sub__(self, other: ImageCounts) -> ImageCounts:
        return self + (-other)


@dataclass
class Iteration:
    id: str
    name: str
    status: str  # Queued / Training / Completed / Failed (cvcore.messages)
    created: datetime
    last_modified: datetime
    domain_id: str
    classification_type: str | None
    training_type: str  # Regular / Advanced
    reserved_budget_hours: int = 0
    dataset_hash: str = ""
    image_count: int = 0
    tag_ids: list[str] = field(default_factory=list)
    trained_at: datetime | None = None
    training_seconds: float | None = None
    exportable: bool = False
    publish_name: str | None = None
    prediction_resource_id: str | None = None
    progress: float = 0.0
    progress_message: str = ""
    error_code: str | None = None
    error_message: str | None = None
    error_image_ids: list[str] = field(default_factory=list)
    skipped_image_ids: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    notification_email: str = ""  # notificationEmailAddress on train (training/mail.py)
    notification_status: str = ""  # Pending / Sent / NotSent / Failed
    notification_detail: str = ""
    etag: str | None = None
