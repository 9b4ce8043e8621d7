"""What the trainer raises that job.py turns into a Failed iteration with its reason."""

from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """The loss became non-finite (the job reports 'diverged')."""
