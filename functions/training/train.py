"""POST /projects/{id}/train: refuse with Custom Vision's codes, or freeze the dataset as a COCO manifest,
create the iteration (Queued) and enqueue one job. Order: manifest, row, message; a failed enqueue marks
the iteration Failed rather than leaving it Queued forever."""

from __future__ import annotations

from collections import Counter

from cvcore import layout, manifest, messages
from cvcore.errors import BadRequest

from ..domain.ports import BlobStore, JobQueue, MetadataRepository, saved_iteration
from ..domain.records import MULTICLASS, NEGATIVE, ImageRecord, Iteration, Project, Tag, utcnow
from . import mail, serialize
from .projects import require_project

MIN_IMAGES_CLASSIFICATION = 5
MIN_IMAGES_DETECTION = 15
REGULAR, ADVANCED = "Regular", "Advanced"
ACTIVE = (messages.QUEUED, messages.TRAINING)


def _training_type(value: str | None) -> str:
    match = {REGULAR.lower(): REGULAR, ADVANCED.lower(): ADVANCED}.get((value or REGULAR).lower())
    if match is None:
        raise BadRequest("BadRequestInvalid", f"trainingType must be Regular or Advanced, got {value!r}")
    return match


def build_manifest(
    project: Project,
    iteration_id: str,
    tags: dict[str, Tag],
    images: list[ImageRecord],
    selected: set[str] | None,
) -> manifest.Manifest:
    """The dataset as of now: tagged images with the tags (and regions) that take part."""
    used = [t for t in tags.values() if selected is None or t.id in selected]
    cat_of = {t.id: i + 1 for i, t in enumerate(sorted(used, key=lambda t: t.created))}
    categories: list[manifest.Category] = [
        {"id": cat_of[t.id], "name": t.name, "tag_id": t.id, "type": t.type} for t in used
    ]
    out_images: list[manifest.ImageEntry] = []
    annotations: list[manifest.Annotation] = []
    for im in sorted(images, key=lambda im: im.id):
        anns: list[tuple[str, list[float] | None]]
        if project.is_detection:
            anns = [(r.tag_id, [r.left, r.top, r.width, r.height]) for r in im.regions if r.tag_id in cat_of]
        else:
            anns = [(t, None) for t in im.tag_ids() if t in cat_of]
        if not anns:
            continue
        number = len(out_images) + 1
        entry: manifest.ImageEntry = {
            "id": number,
            "file_name": im.id,
            "image_id": im.id,
            "width": im.width,
            "height": im.height,
        }
        if im.camera:
            entry["camera"] = im.camera  # the model doctor's file-property check (absent: not known)
        if im.source_format:
            entry["format"] = im.source_format
        out_images.append(entry)
        for tag_id, box in anns:
            ann: manifest.Annotation = {
                "id": len(annotations) + 1,
                "image_id": number,
                "category_id": cat_of[tag_id],
            }
            if box is not None:
                ann["bbox"] = box
            annotations.append(ann)
    return manifest.Manifest(
        project_id=project.id,
        iteration_id=iteration_id,
        task="detection" if project.is_detection else "classification",
        classification_type=project.classification_type,
        categories=categories,
        images=out_images,
        annotations=annotations,
    )


def _validate(project: Project, m: manifest.Manifest) -> None:
    per_tag: Counter[int] = Counter()
    images_of_cat: dict[int, set[int]] = {}
    for a in m.annotations:
        images_of_cat.setdefault(a["category_id"], set()).add(a["image_id"])
    for c in m.categories:
        per_tag[c["id"]] = len(images_of_cat.get(c["id"], ()))
    used = [c for c in m.categories if per_tag[c["id"]] > 0]
    if project.is_detection and any(c["type"] == NEGATIVE for c in used):
        raise BadRequest(
            "BadRequestDetectionTrainingNotAllowNegativeTag",
            "object detection projects cannot train with a Negative tag; remove it from the images",
        )
    minimum = MIN_IMAGES_DETECTION if project.is_detection else MIN_IMAGES_CLASSIFICATION
    short = [f"{c['name']!r} has {per_tag[c['id']]}" for c in used if per_tag[c["id"]] < minimum]
    if short:
        raise BadRequest(
            "BadRequestNotEnoughImagesPerTag",
            f"every tag needs at least {minimum} images to train; " + ", ".join(short),
        )
    if not project.is_detection and len(used) < 2:
        raise BadRequest(
            "BadRequestTrainingValidationFailed",
            "a classifier needs at least two tags with images (a Negative tag counts)",
        )
    if project.is_detection and not used:
        raise BadRequest("BadRequestTrainingValidationFailed", "no image has a region to train on")
    if project.classification_type == MULTICLASS:
        counts = Counter(a["image_id"] for a in m.annotations)
        multi = [im["image_id"] for im in m.images if counts[im["id"]] > 1]
        if multi:
            raise BadRequest(
                "BadRequestMultiClassClassificationTrainingValidationFailed",
                f"a Multiclass project allows one tag per image; {len(multi)} images have more, "
                f"e.g. {', '.join(multi[:5])}",
            )


def train_project(
    repo: MetadataRepository,
    blobs: BlobStore,
    jobs: JobQueue,
    project_id: str,
    *,
    training_type: str | None,
    budget_hours: int,
    force: bool,
    selected_tags: list[str] | None,
    notification_email: str | None = None,
    mailer=None,
) -> dict:
    """`notification_email`: mailed when the training ends through `mailer` (training/mail.py), or marked
    NotSent with the reason on the iteration when no mail transport is configured."""
    project = require_project(repo, project_id)
    notification_email = mail.check_address(notification_email)
    if project.status != "Succeeded":
        raise BadRequest(
            "BadRequestProjectImporting"
            if project.status == "Importing"
            else "ErrorProjectImportRequestFailed",
            f"project {project.id} is {project.status} (import_project); train once its status is "
            "Succeeded" + (f": {project.status_message}" if project.status_message else ""),
        )
    training_type = _training_type(training_type)
    if training_type == ADVANCED and budget_hours < 1:
        raise BadRequest(
            "BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining",
            f"reservedBudgetInHours: Advanced training needs at least 1 hour, got {budget_hours}",
        )
    iterations = repo.list_iterations(project.id)
    running = [it for it in iterations if it.status in ACTIVE]
    if running:
        raise BadRequest(
            "BadRequestTrainingAlreadyInProgress",
            f"iteration {running[0].name!r} is {running[0].status.lower()}; wait for it to finish",
        )
    tags = {t.id: t for t in repo.list_tags(project.id)}
    selected = None
    if selected_tags:
        unknown = [t for t in selected_tags if t not in tags]
        if unknown:
            raise BadRequest("BadRequestInvalidIds", f"selectedTags: tag {unknown[0]} is not in this project")
        selected = set(selected_tags)
    iteration_id = layout.new_id()
    m = build_manifest(project, iteration_id, tags, repo.list_images(project.id), selected)
    _validate(project, m)
    dataset_hash = m.dataset_hash
    done = [it for it in iterations if it.status == messages.COMPLETED]
    if done and done[-1].dataset_hash == dataset_hash and not force:
        raise BadRequest(
            "BadRequestTrainingNotNeeded",
            f"nothing changed since {done[-1].name!r}; add or retag images, or set forceTrain=true",
        )
    m.info["dataset_hash"] = dataset_hash
    m.info["created"] = messages.now_iso()
    blobs.put(
        layout.MODELS, layout.iteration_dataset(project.id, iteration_id), m.dumps(), "application/json"
    )
    now = utcnow()
    number = 1 + max(
        (
            int(it.name.split()[-1])
            for it in iterations
            if it.name.startswith("Iteration ") and it.name.split()[-1].isdigit()
        ),
        default=0,
    )
    iteration = Iteration(
        id=iteration_id,
        name=f"Iteration {number}",
        status=messages.QUEUED,
        created=now,
        last_modified=now,
        domain_id=project.domain_id,
        classification_type=project.classification_type,
        training_type=training_type,
        reserved_budget_hours=budget_hours,
        dataset_hash=dataset_hash,
        image_count=len(m.images),
        tag_ids=[c["tag_id"] for c in m.categories],
        exportable=project.domain.exportable,
    )
    if notification_email:
        ready = mailer is not None and mailer.configured
        iteration.notification_email = notification_email
        iteration.notification_status = mail.PENDING if ready else mail.NOT_SENT
        iteration.notification_detail = "" if ready else mail.NOT_CONFIGURED
    repo.add_iteration(project.id, iteration)
    job = messages.TrainingJob(
        project_id=project.id,
        iteration_id=iteration_id,
        task=m.task,
        classification_type=project.classification_type,
        domain_id=project.domain_id,
        backbone=project.domain.backbone,
        training_type=training_type,
        budget_hours=float(budget_hours),
        dataset_blob=layout.iteration_dataset(project.id, iteration_id),
        dataset_hash=dataset_hash,
        previous_iteration_id=done[-1].id if done else None,
    )
    try:
        jobs.send(messages.dumps(job))
    except Exception as exc:
        stored = saved_iteration(repo, project.id, iteration_id)
        stored.status, stored.error_code = messages.FAILED, messages.ERR_INTERNAL
        stored.error_message = f"the training job could not be queued: {type(exc).__name__}"
        repo.update_iteration(project.id, stored)
        raise
    return serialize.iteration_json(project.id, saved_iteration(repo, project.id, iteration_id))
