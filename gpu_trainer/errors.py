"""What the trainer raises that job.py turns into a Failed iteration with its reason."""

from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """The loss became non-finite (the job reports 'diverged')."""


class JobFailed(Exception):
    """The job cannot succeed: report Failed with this code and message (no retry)."""

    def __init__(self, code: str, message: str, image_ids: tuple[str, ...] = ()):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.image_ids = code, message, image_ids
