"""Quick test (Training API): an image, or the image at a URL, through any Completed iteration without
publishing it (default: the project's latest Completed one), on the prediction route's own path
(service.predict_published: image checks, model cache, stored for review unless store=false, with
publish name ""). Refusals name the field: imageData or url."""

from __future__ import annotations

from cvcore import messages
from cvcore.errors import BadRequest, NotFound

from ..domain.ports import MetadataRepository
from ..domain.records import Iteration, Project
from ..prediction import service
from ..prediction.published import Published, task_of
from .iterations import require_iteration
from .projects import require_project


def completed_iteration(repo: MetadataRepository, project: Project, iteration_id: str | None) -> Iteration:
    """The named iteration, which must be Completed, or else the project's latest Completed one."""
    if iteration_id:
        it = require_iteration(repo, project, iteration_id)
        if it.status != messages.COMPLETED:
            raise BadRequest(
                "BadRequestIterationIsNotTrained",
                f"iterationId: iteration {it.name!r} is {it.status}, not Completed",
            )
        return it
    latest = latest_completed(repo, project)
    if latest is None:
        raise NotFound(
            "NotFoundProjectDefaultIteration",
            "iterationId: the project has no Completed iteration; train one, or name one",
        )
    return latest


def latest_completed(repo: MetadataRepository, project: Project, task: str | None = None) -> Iteration | None:
    """The project's most recently trained Completed iteration (of `task`, when given), or None."""
    done = [
        it
        for it in repo.list_iterations(project.id)
        if it.status == messages.COMPLETED and task in (None, task_of(it))
    ]
    return max(done, key=lambda it: (it.trained_at or it.created, it.created)) if done else None


def quick_test(
    predictor: service.Predictor,
    repo: MetadataRepository,
    project_id: str,
    iteration_id: str | None,
    data: bytes | None = None,
    *,
    url=None,
    store: bool = True,
) -> dict:
    """ImagePrediction for image bytes, or the image at `url` (the prediction route's SSRF-safe fetch)."""
    project = require_project(repo, project_id)
    it = completed_iteration(repo, project, iteration_id)
    field = "imageData" if data is not None else "url"
    try:
        if data is None:
            data = service.fetch_image(url, predictor.url_allow_origins)
        return service.predict_published(predictor, Published(project, it, task_of(it)), data, store=store)
    except BadRequest as exc:  # the image checks say what is wrong; say where, too
        if not exc.code.startswith("BadRequestImage") or exc.message.startswith(f"{field}:"):
            raise
        raise BadRequest(exc.code, f"{field}: {exc.message}") from None
