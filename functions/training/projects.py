"""Domains and projects."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cvcore import domains, layout
from cvcore.errors import BadRequest, NotFound

from ..domain.ports import BlobStore, JobQueue, MetadataRepository, require_project
from ..domain.records import DELETING, MULTICLASS, MULTILABEL, Project, utcnow
from . import deletion, serialize, webhooks

if TYPE_CHECKING:
    from ..prediction.ports import PredictionStore

MAX_NAME = 256
MAX_DESCRIPTION = 1024


def list_domains() -> list[dict]:
    return [serialize.domain_json(d) for d in domains.DOMAINS]


def get_domain(domain_id: str) -> dict:
    d = domains.get(domain_id)
    if d is None:
        raise NotFound("NotFoundDomain", f"domain {domain_id} does not exist; GET /domains lists them")
    return serialize.domain_json(d)


def live_projects(repo: MetadataRepository) -> list[Project]:
    return [p for p in repo.list_projects() if p.status != DELETING]


def _check_name(repo: MetadataRepository, name: str | None, exclude_id: str | None = None) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise BadRequest("BadRequestProjectName", f"name must be 1 to {MAX_NAME} characters")
    if any(p.name.lower() == name.lower() and p.id != exclude_id for p in live_projects(repo)):
        raise BadRequest("BadRequestProjectNameNotUnique", f"a project named {name!r} already exists")
    return name


def _check_description(description: str | None) -> str:
    description = description or ""
    if len(description) > MAX_DESCRIPTION:
        raise BadRequest(
            "BadRequestProjectDescription", f"description must be at most {MAX_DESCRIPTION} characters"
        )
    return description


def _check_settings(domain: domains.Domain, classification_type: str | None, platforms: list[str]):
    if domain.type == domains.OBJECT_DETECTION:
        classification_type = None
    else:
        classification_type = classification_type or MULTICLASS
        match = {MULTICLASS.lower(): MULTICLASS, MULTILABEL.lower(): MULTILABEL}.get(
            classification_type.lower()
        )
        if match is None:
            raise BadRequest(
                "BadRequestProjectUnknownClassification",
                f"classificationType must be Multiclass or Multilabel, got {classification_type!r}",
            )
        classification_type = match
    for platform in platforms:
        if platform not in domain.export_platforms:
            raise BadRequest(
                "BadRequestProjectUnsupportedExportPlatform",
                f"targetExportPlatforms: {platform!r} is not supported for domain {domain.name!r}; "
                + (
                    f"it exports {', '.join(domain.export_platforms)}"
                    if domain.exportable
                    else f"compact domains export {', '.join(domains.EXPORT_PLATFORMS)}"
                ),
            )
    return classification_type, platforms


def _domain(domain_id: str | None) -> domains.Domain:
    if not domain_id:
        return domains.DEFAULT_CLASSIFICATION
    d = domains.get(domain_id)
    if d is None:
        raise BadRequest("BadRequestProjectUnknownDomain", f"domainId {domain_id} is not a known domain")
    return d


def _integrate(integration, project: Project, container_uri, queue_uri) -> None:
    """Check and test the storage integration URIs that are given (None: leave as is; "": clear)."""
    if container_uri is None and queue_uri is None:
        return
    if integration is None:
        raise BadRequest("BadRequestInvalid", "storage integration is not available in this deployment")
    container, queue = integration.check(project.id, container_uri, queue_uri)
    if container_uri is not None:
        project.export_model_container_uri = container
    if queue_uri is not None:
        project.notification_queue_uri = queue


def create_project(
    repo: MetadataRepository,
    name: str | None,
    description: str | None,
    domain_id: str | None,
    classification_type: str | None,
    target_export_platforms: list[str],
    options: dict | None = None,
    integration=None,
) -> dict:
    """`options`: CreateProjectOptions ({exportModelContainerUri, notificationQueueUri}), checked and tested
    by `integration` (training/integration.StorageIntegration) before the project is saved."""
    name = _check_name(repo, name)
    domain = _domain(domain_id)
    ctype, platforms = _check_settings(domain, classification_type, target_export_platforms)
    if options is not None and not isinstance(options, dict):
        raise BadRequest("BadRequestInvalid", "the body must be a CreateProjectOptions JSON object")
    options = options or {}
    now = utcnow()
    project = Project(
        id=layout.new_id(),
        name=name,
        description=_check_description(description),
        domain_id=domain.id,
        classification_type=ctype,
        target_export_platforms=platforms,
        created=now,
        last_modified=now,
    )
    _integrate(
        integration,
        project,
        options.get("exportModelContainerUri") or None,
        options.get("notificationQueueUri") or None,
    )
    repo.save_project(project)
    return serialize.project_json(project)


def get_project(repo: MetadataRepository, project_id: str) -> dict:
    return serialize.project_json(require_project(repo, project_id))


def list_projects(repo: MetadataRepository) -> list[dict]:
    return [serialize.project_json(p) for p in sorted(live_projects(repo), key=lambda p: p.created)]


def update_project(repo: MetadataRepository, project_id: str, body: dict, integration=None) -> dict:
    project = require_project(repo, project_id)
    if not isinstance(body, dict):
        raise BadRequest("BadRequestInvalid", "the body must be a Project JSON object")
    if "name" in body:
        project.name = _check_name(repo, body["name"], exclude_id=project.id)
    if "description" in body:
        project.description = _check_description(body["description"])
    settings = body.get("settings") or {}
    if not isinstance(settings, dict):
        raise BadRequest("BadRequestInvalid", "settings must be an object")
    domain = project.domain
    if settings.get("domainId"):
        new_domain = _domain(settings["domainId"])
        if new_domain.type != domain.type:
            raise BadRequest(
                "BadRequestProjectUnsupportedDomainTypeChange",
                f"settings.domainId: cannot change a {domain.type} project to a {new_domain.type} domain",
            )
        domain = new_domain
    ctype = settings.get("classificationType") or project.classification_type
    platforms = settings.get("targetExportPlatforms")
    platforms = project.target_export_platforms if platforms is None else list(platforms)
    project.classification_type, project.target_export_platforms = _check_settings(domain, ctype, platforms)
    project.domain_id = domain.id
    if "useNegativeSet" in settings and settings["useNegativeSet"] is not None:
        project.use_negative_set = bool(settings["useNegativeSet"])
    augmentation = (settings.get("imageProcessingSettings") or {}).get("augmentationMethods")
    if augmentation is not None:
        project.augmentation_methods = {str(k): bool(v) for k, v in augmentation.items()}
    changed = {
        k: settings[k] or ""
        for k in ("exportModelContainerUri", "notificationQueueUri")
        if k in settings
        and (settings[k] or "")
        != (project.export_model_container_uri if k.startswith("export") else project.notification_queue_uri)
    }
    if changed:
        _integrate(
            integration, project, changed.get("exportModelContainerUri"), changed.get("notificationQueueUri")
        )
    if "webhookUri" in settings or "webhookSecret" in settings:
        if integration is None:
            raise BadRequest("BadRequestInvalid", "webhooks are not available in this deployment")
        project.webhook_uri, project.webhook_secret = webhooks.check(
            project,
            settings.get("webhookUri", project.webhook_uri),
            settings.get("webhookSecret"),
            integration.webhook_allow_origins,
        )
    project.last_modified = utcnow()
    repo.save_project(project)
    return serialize.project_json(project)


def delete_project(
    repo: MetadataRepository,
    blobs: BlobStore,
    project_id: str,
    predictions: PredictionStore | None = None,
    jobs: JobQueue | None = None,
) -> None:
    """Delete the project and everything it holds. With `jobs` (the project-imports queue) the project is
    marked Deleting (gone for the API at once) and the work runs in the background (deletion.py), so a
    project of 100,000 images never times out the request; without, it runs here."""
    project = require_project(repo, project_id)
    if jobs is None:
        deletion.delete_everything(repo, blobs, project.id, predictions)
        return
    deletion.start(repo, jobs, project)
