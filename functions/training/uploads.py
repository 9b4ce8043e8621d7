"""Parse the three upload request shapes into ingest Candidates. Structural problems (not a list, a
bad GUID, a region outside 0..1, over 64 images) refuse the request naming the field; problems with
one image's bytes or source become that image's status."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from concurrent.futures import Executor

from cvcore import layout
from cvcore.errors import BadRequest
from cvcore.imaging import MAX_TRAINING_IMAGE_BYTES
from cvcore.urlfetch import UrlFetchError, fetch

from ..domain.records import Project
from .images import check_metadata, require_detection
from .ingest import MAX_BATCH, Candidate, parse_regions

URL_TIMEOUT_S = 10.0


def _batch(body, project: Project) -> tuple[list, list[str], dict[str, str]]:
    if not isinstance(body, dict):
        raise BadRequest("BadRequestImageBatch", "the body must be an object with an images list")
    entries = body.get("images")
    if not isinstance(entries, list) or not entries:
        raise BadRequest("BadRequestImageBatch", "images: a non-empty list is required")
    if len(entries) > MAX_BATCH:
        raise BadRequest(
            "BadRequestImageBatch", f"images: a batch holds at most {MAX_BATCH} images, got {len(entries)}"
        )
    batch_tags = tag_ids(body.get("tagIds"), "tagIds")
    return entries, batch_tags, check_metadata(body.get("metadata"))


def tag_ids(raw, path: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("BadRequestImageTags", f"{path}: a list of tag ids is required")
    try:
        return [layout.guid(t, f"{path}[{i}]") for i, t in enumerate(raw)]
    except ValueError as exc:
        raise BadRequest("BadRequestImageTags", str(exc)) from None


def _regions(entry: dict, path: str, project: Project):
    if entry.get("regions"):
        require_detection(project, path)
    return parse_regions(entry.get("regions"), path)


def from_files(body, project: Project) -> tuple[list[Candidate], dict[str, str]]:
    entries, batch_tags, metadata = _batch(body, project)
    candidates = []
    for i, entry in enumerate(entries):
        path = f"images[{i}]"
        if not isinstance(entry, dict):
            raise BadRequest("BadRequestImageBatch", f"{path}: an object with name and contents is required")
        name = str(entry.get("name") or f"image-{i}")
        tags = batch_tags + tag_ids(entry.get("tagIds"), f"{path}.tagIds")
        regions = _regions(entry, f"{path}.regions", project)
        contents = entry.get("contents")
        data, error = None, None
        try:
            data = base64.b64decode(contents or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            error = ("ErrorImageFormat", f"{path}.contents is not valid base64")
        candidates.append(Candidate(source=name, data=data, tag_ids=tags, regions=regions, error=error))
    return candidates, metadata


def from_urls(
    body, project: Project, pool: Executor, allow_origins: Iterable[str] = ()
) -> tuple[list[Candidate], dict[str, str]]:
    entries, batch_tags, metadata = _batch(body, project)
    parsed = []
    for i, entry in enumerate(entries):
        path = f"images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not entry["url"].strip():
            raise BadRequest("BadRequestImageUrl", f"{path}.url: a URL string is required")
        parsed.append(
            (
                entry["url"].strip(),
                batch_tags + tag_ids(entry.get("tagIds"), f"{path}.tagIds"),
                _regions(entry, f"{path}.regions", project),
            )
        )
    allow = tuple(allow_origins)

    def download(item) -> Candidate:
        url, tags, regions = item
        try:
            got = fetch(url, max_bytes=MAX_TRAINING_IMAGE_BYTES, timeout=URL_TIMEOUT_S, allow_origins=allow)
            return Candidate(source=url, data=got.data, tag_ids=tags, regions=regions, origin="url")
        except UrlFetchError as exc:
            status = "ErrorImageSize" if exc.reason == "too-large" else "ErrorSource"
            return Candidate(
                source=url, data=None, tag_ids=tags, regions=regions, origin="url", error=(status, str(exc))
            )

    return list(pool.map(download, parsed)), metadata


def from_data(files: list[tuple[str, bytes]], query_tag_ids: list[str]) -> list[Candidate]:
    if not files:
        raise BadRequest(
            "BadRequestImageBatch",
            "the body holds no image: send multipart/form-data files or application/octet-stream bytes",
        )
    if len(files) > MAX_BATCH:
        raise BadRequest(
            "BadRequestImageBatch", f"a batch holds at most {MAX_BATCH} images, got {len(files)}"
        )
    return [Candidate(source=name, data=data, tag_ids=list(query_tag_ids)) for name, data in files]
