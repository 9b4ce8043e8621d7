"""Shared fixtures. `azurite` is one real emulator for the whole test session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.azurite import running_azurite


@pytest.fixture(scope="session")
def azurite() -> str:
    """Connection string of a real Azurite running on free loopback ports."""
    with running_azurite() as conn:
        yield conn
