"""Composition root: builds the services every trigger uses, once per process, from settings."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from cvcore import layout
from cvcore import settings as settings_mod
from cvcore.storage import StorageClients

from .adapters.blobs import AzureBlobStore
from .adapters.predictions import TablePredictionStore
from .adapters.queues import AzureJobQueue
from .adapters.tables import TableMetadataRepository
from .adapters.vision_registry import TableVisionRegistry
from .domain.ports import BlobStore, JobQueue, MetadataRepository
from .prediction.published import Catalog
from .prediction.recorder import Recorder
from .prediction.service import Predictor
from .prediction.session_cache import ModelCache
from .training.integration import StorageIntegration
from .training.mail import Mailer
from .vision.registry import VisionRegistry

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: settings_mod.Settings
    repo: MetadataRepository
    blobs: BlobStore
    pool: ThreadPoolExecutor
    jobs: JobQueue | None = None
    imports: JobQueue | None = (
        None  # project-imports: large import_project requests (training/project_transfer)
    )
    url_allow_origins: tuple[str, ...] = ()
    clients: StorageClients | None = None
    predictor: Predictor | None = None
    vision: VisionRegistry | None = None  # Image Analysis datasets, models, evaluations (functions/vision)
    integration: StorageIntegration | None = None  # projects' export containers and notification queues
    mailer: Mailer | None = None  # notificationEmailAddress on train (training/mail.py)


_lock = threading.Lock()
_services: Services | None = None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def build(settings: settings_mod.Settings) -> Services:
    clients = StorageClients(settings.storage)
    clients.ensure_resources()
    pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cv-io")
    # Image URLs may point at our own storage endpoint only when it is the local emulator on loopback.
    allow = (_origin(settings.storage.endpoints["blob"]),) if settings.is_local else ()
    repo, blobs = TableMetadataRepository(clients.table, pool), AzureBlobStore(clients.blob, pool)
    predictor = Predictor(
        catalog=Catalog(repo),
        models=ModelCache(blobs.get),
        store=TablePredictionStore(clients.table, blobs, pool),
        pool=pool,
        url_allow_origins=allow,
        recorder=Recorder(),
    )
    return Services(
        settings=settings,
        repo=repo,
        blobs=blobs,
        pool=pool,
        jobs=AzureJobQueue(clients),
        imports=AzureJobQueue(clients, layout.PROJECT_IMPORTS),
        url_allow_origins=allow,
        clients=clients,
        predictor=predictor,
        vision=TableVisionRegistry(clients.table),
        integration=StorageIntegration(
            clients, settings, blobs, AzureJobQueue(clients, layout.WEBHOOK_DELIVERIES)
        ),
        mailer=Mailer(settings.smtp_url, settings.mail_from),
    )


def services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                _services = build(settings_mod.load())
                log.info("services ready (local=%s)", _services.settings.is_local)
    return _services


def override(value: Services | None) -> None:
    """Tests: install (or clear with None) the services the triggers use."""
    global _services
    with _lock:
        _services = value
