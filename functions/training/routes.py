"""Training API routes (v3.3 and v3.4-preview): parse the request, call the core, shape the reply.

One file because it is the API's route table: one short handler per operation, in the order of the
Training API reference, so the whole surface reads (and tests/unit/test_sdk_surface.py checks it) in one
place; the logic behind each route lives in the core module it calls."""

from __future__ import annotations

from functools import partial

from cvcore.errors import BadRequest

from ..domain.records import Project
from ..web import multipart
from ..web.http import ApiRequest, Binary
from ..web.images import image_bytes, image_url
from ..web.router import Router
from . import (
    coco_drop,
    coco_export,
    deletion,
    exporting,
    images,
    ingest,
    iterations,
    project_artifacts,
    project_transfer,
    projects,
    proposals,
    quicktest,
    review,
    smart_labeler,
    tags,
    train,
    uploads,
    webhooks,
)
from .ports import TrainingServices, jobs, predictor

router = Router()
get, post, patch, delete = (partial(router.route, m) for m in ("GET", "POST", "PATCH", "DELETE"))


# ---- domains and projects -------------------------------------------------------------------------------
@get("domains")
def _domains(s: TrainingServices, r: ApiRequest):
    return projects.list_domains()


@get("domains/{domainId}")
def _domain(s: TrainingServices, r: ApiRequest, domainId: str):
    return projects.get_domain(domainId)


@get("projects")
def _projects(s: TrainingServices, r: ApiRequest):
    return projects.list_projects(s.repo)


@post("projects")
def _create_project(s: TrainingServices, r: ApiRequest):
    body = r.json(required=False)
    options = dict(body) if isinstance(body, dict) else body
    for key in (
        "exportModelContainerUri",
        "notificationQueueUri",
    ):  # also as query parameters (the docs' curl)
        if r.query(key) and isinstance(options, (dict, type(None))):
            options = {**(options or {}), key: r.query(key)}
    return projects.create_project(
        s.repo,
        r.query("name"),
        r.query("description"),
        r.query("domainId"),
        r.query("classificationType"),
        r.query_list("targetExportPlatforms"),
        options,
        s.integration,
    )


@get("projects/{projectId}")
def _project(s: TrainingServices, r: ApiRequest, projectId: str):
    return projects.get_project(s.repo, projectId)


@patch("projects/{projectId}")
def _update_project(s: TrainingServices, r: ApiRequest, projectId: str):
    return projects.update_project(s.repo, projectId, r.json(), s.integration)


@delete("projects/{projectId}")
def _delete_project(s: TrainingServices, r: ApiRequest, projectId: str):
    """204 at once: the project is gone for the API; its images, blobs and predictions go in the background."""
    projects.delete_project(s.repo, s.blobs, projectId, predictor(s).store, jobs=s.imports)


@get("projects/{projectId}/deletion")
def _deletion_status(s: TrainingServices, r: ApiRequest, projectId: str):
    """How a background project deletion goes: Deleting (with the step), Deleted (what went) or Failed."""
    return deletion.status(s.repo, projectId)


@get("projects/{projectId}/export")
def _export_project(s: TrainingServices, r: ApiRequest, projectId: str):
    return project_transfer.export_project(s.repo, s.blobs, projectId)


@get("projects/{projectId}/artifacts")
def _artifact(s: TrainingServices, r: ApiRequest, projectId: str):
    data, content_type = project_artifacts.get_artifact(s.repo, s.blobs, projectId, r.query("path"))
    return Binary(data, content_type)


@post("projects/import")
def _import_project(s: TrainingServices, r: ApiRequest):
    return project_transfer.import_project(
        s.repo, s.blobs, s.pool, r.query("token"), r.query("name"), s.url_allow_origins, jobs=s.imports
    )


@get("projects/{projectId}/coco")
def _coco_export(s: TrainingServices, r: ApiRequest, projectId: str):
    """The project's dataset (or an iteration's) as COCO; boxes=pixels (default) or normalized."""
    return coco_export.export_coco(s.repo, s.blobs, projectId, r.query("iterationId"), r.query("boxes"))


@get("projects/{projectId}/coco/import")
def _coco_import_status(s: TrainingServices, r: ApiRequest, projectId: str):
    """Progress or outcome of the COCO drop uploads/{projectId}/{name}."""
    return coco_drop.read_status(s.repo, s.blobs, projectId, r.query("name"))


# ---- tags -----------------------------------------------------------------------------------------------
@get("projects/{projectId}/tags")
def _tags(s: TrainingServices, r: ApiRequest, projectId: str):
    return tags.list_tags(s.repo, projectId)


@post("projects/{projectId}/tags")
def _create_tag(s: TrainingServices, r: ApiRequest, projectId: str):
    return tags.create_tag(s.repo, projectId, r.query("name"), r.query("description"), r.query("type"))


@get("projects/{projectId}/tags/{tagId}")
def _tag(s: TrainingServices, r: ApiRequest, projectId: str, tagId: str):
    return tags.get_tag(s.repo, projectId, tagId)


@patch("projects/{projectId}/tags/{tagId}")
def _update_tag(s: TrainingServices, r: ApiRequest, projectId: str, tagId: str):
    return tags.update_tag(s.repo, projectId, tagId, r.json())


@delete("projects/{projectId}/tags/{tagId}")
def _delete_tag(s: TrainingServices, r: ApiRequest, projectId: str, tagId: str):
    tags.delete_tag(s.repo, projectId, tagId)


# ---- image queries --------------------------------------------------------------------------------------
def _listing(s: TrainingServices, r: ApiRequest, projectId: str, status: str | None):
    return images.query_images(
        s.repo,
        s.blobs,
        projectId,
        tagging_status=status if status else r.query("taggingStatus"),
        tag_ids=r.query_guids("tagIds", 20) if status != "Untagged" else [],
        order_by=r.query("orderBy"),
        take=r.query_int("take", 50, 0, images.MAX_TAKE),
        skip=r.query_int("skip", 0, 0),
        iteration_id=r.query("iterationId"),
    )


def _count(s: TrainingServices, r: ApiRequest, projectId: str, status: str | None):
    return images.count_images(
        s.repo,
        projectId,
        tagging_status=status if status else r.query("taggingStatus"),
        tag_ids=r.query_guids("tagIds") if status != "Untagged" else [],
        iteration_id=r.query("iterationId"),
        blobs=s.blobs,
    )


get("projects/{projectId}/images")(partial(_listing, status=None))
get("projects/{projectId}/images/tagged")(partial(_listing, status="Tagged"))
get("projects/{projectId}/images/untagged")(partial(_listing, status="Untagged"))
get("projects/{projectId}/images/count")(partial(_count, status=None))
get("projects/{projectId}/images/tagged/count")(partial(_count, status="Tagged"))
get("projects/{projectId}/images/untagged/count")(partial(_count, status="Untagged"))


@get("projects/{projectId}/images/id")
def _images_by_ids(s: TrainingServices, r: ApiRequest, projectId: str):
    return images.images_by_ids(
        s.repo, s.blobs, projectId, r.query_guids("imageIds", 256), r.query("iterationId")
    )


@delete("projects/{projectId}/images")
def _delete_images(s: TrainingServices, r: ApiRequest, projectId: str):
    images.delete_images(
        s.repo, s.blobs, projectId, r.query_guids("imageIds", 256), r.query_bool("allImages"), s.pool
    )


# ---- uploads ----------------------------------------------------------------------------------------------
def _ingest(s: TrainingServices, project: Project, candidates, metadata=None):
    project_tags = {t.id: t for t in s.repo.list_tags(project.id)}
    outcomes = ingest.ingest(s.repo, s.blobs, s.pool, project, candidates, metadata, project_tags)
    return multi_status(ingest.summary(project, outcomes, project_tags, s.blobs.url))


def multi_status(summary: dict, ok: bool | None = None):
    """Custom Vision answers 207 Multi-Status when part of a batch did not go through."""
    ok = summary["isBatchSuccessful"] if ok is None else ok
    return summary, 200 if ok else 207


@post("projects/{projectId}/images")
def _create_from_data(s: TrainingServices, r: ApiRequest, projectId: str):
    project = projects.require_project(s.repo, projectId)
    if r.content_type.startswith("multipart/"):
        files = multipart.parse(r.headers.get("content-type", ""), r.body())
    elif r.content_type in ("application/octet-stream", "") or r.content_type.startswith("image/"):
        files = [("image", r.body())] if r.body() else []
    else:
        raise BadRequest(
            "UnsupportedMediaType",
            f"Content-Type {r.content_type!r} is not accepted; send "
            "multipart/form-data or application/octet-stream",
        )
    candidates = uploads.from_data(files, r.query_guids("tagIds", 20))
    return _ingest(s, project, candidates)


@post("projects/{projectId}/images/files")
def _create_from_files(s: TrainingServices, r: ApiRequest, projectId: str):
    project = projects.require_project(s.repo, projectId)
    candidates, metadata = uploads.from_files(r.json(), project)
    return _ingest(s, project, candidates, metadata)


@post("projects/{projectId}/images/urls")
def _create_from_urls(s: TrainingServices, r: ApiRequest, projectId: str):
    project = projects.require_project(s.repo, projectId)
    candidates, metadata = uploads.from_urls(r.json(), project, s.pool, s.url_allow_origins)
    return _ingest(s, project, candidates, metadata)


# ---- tags, regions, metadata on images -------------------------------------------------------------------
@post("projects/{projectId}/images/tags")
def _create_image_tags(s: TrainingServices, r: ApiRequest, projectId: str):
    return images.create_image_tags(s.repo, projectId, r.json(), s.pool)


@delete("projects/{projectId}/images/tags")
def _delete_image_tags(s: TrainingServices, r: ApiRequest, projectId: str):
    images.delete_image_tags(
        s.repo, projectId, r.query_guids("imageIds", 64), r.query_guids("tagIds", 20), s.pool
    )


@post("projects/{projectId}/images/regions")
def _create_image_regions(s: TrainingServices, r: ApiRequest, projectId: str):
    summary = images.create_image_regions(s.repo, projectId, r.json(), s.pool)
    return multi_status(summary, ok=not summary["duplicated"] and not summary["exceeded"])


@delete("projects/{projectId}/images/regions")
def _delete_image_regions(s: TrainingServices, r: ApiRequest, projectId: str):
    images.delete_image_regions(s.repo, projectId, r.query_guids("regionIds", 64), s.pool)


@post("projects/{projectId}/images/metadata")
def _update_metadata(s: TrainingServices, r: ApiRequest, projectId: str):
    return multi_status(
        images.update_metadata(s.repo, projectId, r.query_guids("imageIds", 256), r.json(), s.pool)
    )


# ---- training and iterations ---------------------------------------------------------------------------
@post("projects/{projectId}/train")
def _train(s: TrainingServices, r: ApiRequest, projectId: str):
    body = r.json(required=False) or {}
    if not isinstance(body, dict):
        raise BadRequest("BadRequestInvalid", "the body must be a TrainingParameters object")
    selected = uploads.tag_ids(body.get("selectedTags"), "selectedTags")
    return train.train_project(
        s.repo,
        s.blobs,
        jobs(s),
        projectId,
        training_type=r.query("trainingType"),
        budget_hours=r.query_int("reservedBudgetInHours", 0, 0, 24 * 7),
        force=r.query_bool("forceTrain"),
        selected_tags=selected or None,
        notification_email=r.query("notificationEmailAddress"),
        mailer=s.mailer,
    )


@get("projects/{projectId}/iterations")
def _iterations(s: TrainingServices, r: ApiRequest, projectId: str):
    return iterations.list_iterations(s.repo, projectId)


@get("projects/{projectId}/iterations/{iterationId}")
def _iteration(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    return iterations.get_iteration(s.repo, projectId, iterationId)


@patch("projects/{projectId}/iterations/{iterationId}")
def _update_iteration(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    return iterations.update_iteration(s.repo, projectId, iterationId, r.json())


@delete("projects/{projectId}/iterations/{iterationId}")
def _delete_iteration(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    iterations.delete_iteration(s.repo, s.blobs, projectId, iterationId)


@get("projects/{projectId}/iterations/{iterationId}/performance")
def _performance(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    return iterations.performance(
        s.repo, s.blobs, projectId, iterationId, r.query_float("threshold"), r.query_float("overlapThreshold")
    )


@get("projects/{projectId}/iterations/{iterationId}/advice")
def _advice(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    """Our extension: how to improve the model (the model doctor's findings, training/iterations.advice)."""
    return iterations.advice(s.repo, s.blobs, projectId, iterationId)


@post("projects/{projectId}/iterations/{iterationId}/publish")
def _publish(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    return iterations.publish(
        s.repo,
        projectId,
        iterationId,
        r.query("publishName"),
        r.query("predictionId"),
        r.query_bool("overwrite"),
    )


@delete("projects/{projectId}/iterations/{iterationId}/publish")
def _unpublish(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    iterations.unpublish(s.repo, projectId, iterationId)


@get("projects/{projectId}/webhook/deliveries")
def _webhook_deliveries(s: TrainingServices, r: ApiRequest, projectId: str):
    return webhooks.deliveries(s.blobs, projects.require_project(s.repo, projectId).id)


@get("projects/{projectId}/iterations/{iterationId}/export")
def _exports(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    return exporting.exports_of(s.repo, s.blobs, projectId, iterationId)


@post("projects/{projectId}/iterations/{iterationId}/export")
def _export(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    return exporting.export(
        s.repo,
        s.blobs,
        jobs(s),
        projectId,
        iterationId,
        r.query("platform"),
        r.query("flavor"),
        s.integration,
    )


@get("projects/{projectId}/iterations/{iterationId}/performance/images")
def _image_performances(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    return iterations.image_performances(
        s.repo,
        s.blobs,
        projectId,
        iterationId,
        tag_ids=r.query_guids("tagIds", 20),
        order_by=r.query("orderBy"),
        take=r.query_int("take", 50, 0, images.MAX_TAKE),
        skip=r.query_int("skip", 0, 0),
    )


@get("projects/{projectId}/iterations/{iterationId}/performance/images/count")
def _image_performance_count(s: TrainingServices, r: ApiRequest, projectId: str, iterationId: str):
    return iterations.image_performance_count(
        s.repo, s.blobs, projectId, iterationId, r.query_guids("tagIds", 20)
    )


# ---- review: stored predictions, quick test, suggested tags (training/review, quicktest, smart_labeler) -----
@post("projects/{projectId}/predictions/query")
def _query_predictions(s: TrainingServices, r: ApiRequest, projectId: str):
    return review.query_predictions(s.repo, s.blobs, predictor(s).store, projectId, r.json())


@delete("projects/{projectId}/predictions")
def _delete_predictions(s: TrainingServices, r: ApiRequest, projectId: str):
    review.delete_predictions(s.repo, predictor(s).store, projectId, r.query_list("ids"))


@post("projects/{projectId}/images/predictions")
def _create_from_predictions(s: TrainingServices, r: ApiRequest, projectId: str):
    return multi_status(
        review.create_images_from_predictions(
            s.repo, s.blobs, predictor(s).store, s.pool, projectId, r.json()
        )
    )


def _quick_test(s: TrainingServices, r: ApiRequest, projectId: str, source: str):
    data, url = (image_bytes(r), None) if source == "image" else (None, image_url(r))
    return quicktest.quick_test(
        predictor(s),
        s.repo,
        projectId,
        r.query("iterationId"),
        data,
        url=url,
        store=r.query_bool("store", True),
    )


post("projects/{projectId}/quicktest/image")(partial(_quick_test, source="image"))
post("projects/{projectId}/quicktest/url")(partial(_quick_test, source="url"))


@post("projects/{projectId}/tagsandregions/suggestions")
def _suggest_tags_and_regions(s: TrainingServices, r: ApiRequest, projectId: str):
    return smart_labeler.suggest_tags_and_regions(
        s.repo, s.blobs, predictor(s), projectId, r.query("iterationId"), r.query_guids("imageIds", 64)
    )


@post("projects/{projectId}/images/suggested")
def _query_suggested_images(s: TrainingServices, r: ApiRequest, projectId: str):
    return smart_labeler.query_suggested_images(
        s.repo, s.blobs, predictor(s), projectId, r.query("iterationId"), r.json(required=False)
    )


@post("projects/{projectId}/images/suggested/count")
def _query_suggested_image_count(s: TrainingServices, r: ApiRequest, projectId: str):
    return smart_labeler.query_suggested_image_count(
        s.repo, s.blobs, predictor(s), projectId, r.query("iterationId"), r.json(required=False)
    )


@post("projects/{projectId}/images/{imageId}/regionproposals")
def _region_proposals(s: TrainingServices, r: ApiRequest, projectId: str, imageId: str):
    return proposals.region_proposals(s.repo, s.blobs, predictor(s), projectId, imageId)
