"""Tags. Image counts are derived from the image rows (one partition scan), so they cannot drift."""

from __future__ import annotations

from collections import Counter

from cvcore import layout
from cvcore.errors import BadRequest, NotFound

from ..domain.ports import MetadataRepository
from ..domain.records import NEGATIVE, TAG_TYPES, Project, Tag, utcnow
from . import serialize
from .images import update_images
from .projects import require_project

MAX_TAGS_PER_PROJECT = 500
MAX_NAME = 256
MAX_DESCRIPTION = 1024


def image_counts(repo: MetadataRepository, project_id: str) -> Counter:
    return Counter(repo.image_counts(project_id).per_tag)


def require_tag(repo: MetadataRepository, project: Project, tag_id: str) -> Tag:
    checked: str | None  # None (and so "tag None" below) when it is not a GUID
    try:
        checked = layout.guid(tag_id, "tagId")
    except ValueError:
        checked = None
    tag = next((t for t in repo.list_tags(project.id) if t.id == checked), None)
    if tag is None:
        raise NotFound("NotFoundTag", f"tag {checked} does not exist in project {project.id}")
    return tag


def _check(
    tags: list[Tag],
    name: str | None,
    description: str | None,
    tag_type: str | None,
    exclude_id: str | None = None,
) -> tuple[str, str, str]:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise BadRequest("BadRequestTagName", f"name must be 1 to {MAX_NAME} characters")
    if any(t.name.lower() == name.lower() and t.id != exclude_id for t in tags):
        raise BadRequest("BadRequestTagNameNotUnique", f"a tag named {name!r} already exists in this project")
    description = description or ""
    if len(description) > MAX_DESCRIPTION:
        raise BadRequest(
            "BadRequestTagDescription", f"description must be at most {MAX_DESCRIPTION} characters"
        )
    tag_type = tag_type or "Regular"
    match = {t.lower(): t for t in TAG_TYPES}.get(tag_type.lower())
    if match is None:
        raise BadRequest("BadRequestTagType", f"type must be one of {', '.join(TAG_TYPES)}, got {tag_type!r}")
    if match == NEGATIVE and any(t.type == NEGATIVE and t.id != exclude_id for t in tags):
        raise BadRequest("BadRequestMultipleNegativeTag", "a project has at most one Negative tag")
    return name, description, match


def create_tag(
    repo: MetadataRepository, project_id: str, name: str | None, description: str | None, tag_type: str | None
) -> dict:
    project = require_project(repo, project_id)
    tags = repo.list_tags(project.id)
    if len(tags) >= MAX_TAGS_PER_PROJECT:
        raise BadRequest(
            "BadRequestExceedTagPerProjectLimit", f"a project has at most {MAX_TAGS_PER_PROJECT} tags"
        )
    name, description, tag_type = _check(tags, name, description, tag_type)
    tag = Tag(id=layout.new_id(), name=name, description=description, type=tag_type, created=utcnow())
    repo.save_tag(project.id, tag)
    return serialize.tag_json(tag, 0)


def list_tags(repo: MetadataRepository, project_id: str) -> list[dict]:
    project = require_project(repo, project_id)
    counts = image_counts(repo, project.id)
    return [serialize.tag_json(t, counts[t.id]) for t in repo.list_tags(project.id)]


def get_tag(repo: MetadataRepository, project_id: str, tag_id: str) -> dict:
    project = require_project(repo, project_id)
    tag = require_tag(repo, project, tag_id)
    return serialize.tag_json(tag, image_counts(repo, project.id)[tag.id])


def update_tag(repo: MetadataRepository, project_id: str, tag_id: str, body: dict) -> dict:
    project = require_project(repo, project_id)
    tag = require_tag(repo, project, tag_id)
    if not isinstance(body, dict):
        raise BadRequest("BadRequestInvalid", "the body must be a Tag JSON object")
    tag.name, tag.description, tag.type = _check(
        repo.list_tags(project.id),
        body.get("name", tag.name),
        body.get("description", tag.description),
        body.get("type", tag.type),
        exclude_id=tag.id,
    )
    repo.save_tag(project.id, tag)
    return serialize.tag_json(tag, image_counts(repo, project.id)[tag.id])


def delete_tag(repo: MetadataRepository, project_id: str, tag_id: str) -> None:
    """Remove the tag from every image (explicit tags and regions), then delete it."""
    project = require_project(repo, project_id)
    tag = require_tag(repo, project, tag_id)
    tagged = [im.id for im in repo.list_images(project.id) if tag.id in im.tag_ids()]

    def untag(im):
        im.tags.pop(tag.id, None)
        im.regions = [r for r in im.regions if r.tag_id != tag.id]
        return True

    update_images(repo, project.id, tagged, untag)
    repo.delete_tag(project.id, tag.id)
