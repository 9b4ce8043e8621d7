"""Chaos, at the HTTP edge: when storage cannot be reached (what a paused or failing account gives once the
storage SDK's own retries are spent) both APIs answer a clear 503: Custom Vision's error body and a
Retry-After, never a 500 or a traceback. The live pause test (test_storage_faults) saw only slow successes
with a 5 s pause (the SDK waits out the pause), so the refusal itself is driven here with a failing store."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import azure.functions as func
import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from cvcore import settings
from functions import bootstrap, http_prediction, http_training
from functions.web.http import RETRY_AFTER_S
from tests.unit.fakes import FakeBlobStore, FakeRepository

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


class UnreachableRepository(FakeRepository):
    """Every project lookup fails as an unreachable account does."""

    def __init__(self, error: Exception):
        super().__init__()
        self.error = error

    def list_projects(self, *args, **kwargs):
        raise self.error

    def get_project(self, *args, **kwargs):
        raise self.error


@pytest.fixture(params=[ServiceRequestError("connection refused"), ServiceResponseError("read timed out")])
def unreachable(request):
    pool = ThreadPoolExecutor(2)
    bootstrap.override(
        bootstrap.Services(
            settings=settings.load({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}),
            repo=UnreachableRepository(request.param),
            blobs=FakeBlobStore(),
            pool=pool,
        )
    )
    yield type(request.param).__name__
    bootstrap.override(None)
    pool.shutdown()


def _call(handle, api: str, version: str, method: str, path: str, key_header: str, key: str):
    req = func.HttpRequest(
        method,
        f"http://localhost/customvision/{version}/{api}/{path}",
        headers={key_header: key, "Content-Type": "application/octet-stream"},
        params={},
        route_params={"version": version, "path": path},
        body=b"\xff\xd8not-really-a-jpeg",
    )
    return handle(req)


@pytest.mark.parametrize(
    "call",
    [
        lambda: _call(
            http_training.handle,
            "training",
            "v3.3",
            "GET",
            "projects",
            "Training-Key",
            settings.LOCAL_TRAINING_KEY,
        ),
        lambda: _call(
            http_training.handle,
            "training",
            "v3.3",
            "GET",
            "projects/6a1f2c7e-0a4b-4c1d-9e2f-3b4c5d6e7f80/tags",
            "Training-Key",
            settings.LOCAL_TRAINING_KEY,
        ),
    ],
    ids=["list-projects", "project-tags"],
)
def test_unreachable_storage_is_a_503_with_retry_after(unreachable, call):
    response = call()
    assert response.status_code == 503
    assert response.headers.get("Retry-After") == str(RETRY_AFTER_S)
    body = json.loads(response.get_body())
    assert body["code"] and unreachable in body["message"]
    assert "Traceback" not in response.get_body().decode()


def test_other_refusals_carry_no_retry_after(unreachable):
    response = _call(
        http_prediction.handle,
        "prediction",
        "v3.0",
        "POST",
        "x/classify/iterations/p/image",
        "Prediction-Key",
        "wrong",
    )
    assert response.status_code == 401 and "Retry-After" not in response.headers
