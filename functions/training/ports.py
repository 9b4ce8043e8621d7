"""What the Training API's routes need from the composition root: the ports and services they pass on to the
core functions. bootstrap.Services satisfies it as is (a structural Protocol), so routes.py does not import
bootstrap, which sits above every API package; a test can hand the routes any object with these fields."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Protocol

from ..domain.ports import BlobStore, JobQueue, MetadataRepository, wired
from ..prediction.service import Predictor
from .integration import StorageIntegration
from .mail import Mailer


class TrainingServices(Protocol):
    repo: MetadataRepository
    blobs: BlobStore
    pool: Executor
    jobs: JobQueue | None  # training-jobs
    imports: JobQueue | None  # project-imports (project_transfer)
    url_allow_origins: tuple[str, ...]
    predictor: Predictor | None
    integration: StorageIntegration | None
    mailer: Mailer | None


def predictor(s: TrainingServices) -> Predictor:
    """The prediction service (stored predictions, quick tests, suggestions); every deployment has it."""
    return wired(s.predictor, "predictor")


def jobs(s: TrainingServices) -> JobQueue:
    """The training-jobs queue (train, export); every deployment has it."""
    return wired(s.jobs, "jobs")
