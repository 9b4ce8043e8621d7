"""What the Image Analysis core needs from the composition root: the ports it reads and writes through.
bootstrap.Services satisfies it as is (a structural Protocol), so vision/ never imports bootstrap, which sits
above every API package and builds the adapters; unit tests hand in fakes with the same fields."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Protocol

from cvcore.settings import Settings
from cvcore.storage import StorageClients

from ..domain.ports import BlobStore, JobQueue, MetadataRepository, wired
from ..prediction.service import Predictor
from .registry import VisionRegistry


class VisionServices(Protocol):
    settings: Settings  # the blob endpoint a dataset's URIs must name
    repo: MetadataRepository
    blobs: BlobStore

    @property
    def pool(self) -> Executor:  # read-only, so Services' ThreadPoolExecutor (or a test's) satisfies it
        ...

    jobs: JobQueue | None  # training-jobs: a model's training
    imports: JobQueue | None  # project-imports: large dataset registrations finish in the background
    url_allow_origins: tuple[str, ...]
    clients: StorageClients | None  # the containers a dataset may read (None: only the fixed ones)
    predictor: Predictor | None
    vision: VisionRegistry | None


def registry(s: VisionServices) -> VisionRegistry:
    """The Image Analysis records; every deployment has them (optional in Services only for tests)."""
    return wired(s.vision, "vision")
