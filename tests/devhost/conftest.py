"""Fixtures for the local functions host's tests: the toy app's environment and the app itself."""

from __future__ import annotations

import pytest

from tests.devhost.helpers import TOY_ENV, TOYAPP


@pytest.fixture(scope="module")
def toy_env(azurite):
    """The toy app's app settings, with AzureWebJobsStorage pointing at the test Azurite."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AzureWebJobsStorage", azurite)
        for key, value in TOY_ENV.items():
            mp.setenv(key, value)
        yield azurite


@pytest.fixture(scope="module")
def toy_app(toy_env):
    from devhost import load_app

    return load_app("toy_app:app", TOYAPP)
