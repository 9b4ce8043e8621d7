"""GET /projects/{projectId}/artifacts?path=: a project's stored file by its path relative to the project
(Custom Vision's get_artifact, for clients that cannot use the blob URLs, e.g. behind a private network).

A path is `{container}/{name under the project's folder}`, as cvcore.layout names them, for example
`images/originals/{imageId}`, `images/thumbnails/{imageId}.jpg`, `models/{iterationId}/model.onnx`,
`models/{iterationId}/report/pr_curves.png`, `predictions/thumbnails/{predictionId}.jpg`. The path is never
used as given: the container must be one a project owns, every segment a plain name (no `..`, no
separators, no control characters), and the project's own prefix is put in front, so no path reaches
another project's files or anything outside the project.
"""

from __future__ import annotations

import re

from cvcore import layout
from cvcore.errors import BadRequest, NotFound

from ..domain.ports import BlobStore, MetadataRepository
from .projects import require_project
from .review import MISSING

CONTAINERS = (layout.IMAGES, layout.MODELS, layout.PREDICTIONS)
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_PATH = 512
TYPES = {
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".txt": "text/plain",
    ".onnx": "application/octet-stream",
    ".zip": "application/zip",
}
MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
    (b"RIFF", "image/webp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
INVALID = "BadRequestInvalidArtifactUri"


def blob_of(project_id: str, path: str | None) -> tuple[str, str]:
    """(container, blob name) of an artifact path, or BadRequestInvalidArtifactUri naming what is wrong."""
    if not path or not path.strip():
        raise BadRequest(
            INVALID, "path: required, e.g. images/originals/{imageId} or models/{iterationId}/model.onnx"
        )
    if len(path) > MAX_PATH:
        raise BadRequest(INVALID, f"path: at most {MAX_PATH} characters")
    container, _, rest = path.strip().strip("/").partition("/")
    if container.lower() not in CONTAINERS:
        raise BadRequest(
            INVALID,
            f"path: must start with one of {', '.join(c + '/' for c in CONTAINERS)}; got {container[:40]!r}",
        )
    segments = rest.split("/")
    bad = next((s for s in segments if not SEGMENT.fullmatch(s) or s.strip(".") == ""), None)
    if not rest or bad is not None:
        raise BadRequest(
            INVALID,
            f"path: {'empty name' if not rest or bad is None else repr(bad[:40]) + ' is not a plain name'} "
            "(letters, digits, '.', '_', '-'; no '..')",
        )
    return container.lower(), layout.project_prefix(project_id) + "/".join(segments)


def get_artifact(
    repo: MetadataRepository, blobs: BlobStore, project_id: str, path: str | None
) -> tuple[bytes, str]:
    """(bytes, content type) of the artifact at `path` in the project."""
    project = require_project(repo, project_id)
    container, name = blob_of(project.id, path)
    try:
        data = blobs.get(container, name)
    except MISSING:
        shown = (path or "").strip()  # blob_of refused an empty path
        raise NotFound("NotFound", f"path: no artifact {shown!r} in project {project.id}") from None
    suffix = name[name.rfind(".") :].lower() if "." in name.rsplit("/", 1)[-1] else ""
    kind = TYPES.get(suffix) or next(
        (t for magic, t in MAGIC if data.startswith(magic)), "application/octet-stream"
    )
    return data, kind
